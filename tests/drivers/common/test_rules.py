"""Per-tag rules: deadband with heartbeat, limits raising and clearing alarms, plausibility and stuck values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drivers.common.config import Limits, Plausible, TagRules
from drivers.common.rules import Deadband, chain
from gateway.model import ALARM, TELEMETRY, Reading


def feed(step, values, t0=1000.0, dt=1.0):
    out = []
    for i, v in enumerate(values):
        out += step(Reading("t", v, t0 + i * dt, unit="degC"))
    return out


def test_absolute_deadband_and_heartbeat():
    step, _ = chain(TagRules(deadband=0.5, heartbeat=5))
    sent = feed(step, [20.0, 20.2, 20.4, 20.6, 20.7, 20.7, 20.7, 20.7, 20.7, 20.7, 20.7])
    # 20.0 first; 20.6 moved > 0.5; then unchanged until the heartbeat 5 s after the last send
    assert [(r.value, r.ts) for r in sent] == [(20.0, 1000.0), (20.6, 1003.0), (20.7, 1008.0)]


def test_percent_deadband():
    step, _ = chain(TagRules(deadband=10, deadband_mode="percent"))
    assert [r.value for r in feed(step, [100.0, 109.0, 111.0, 121.0, 123.0])] == [100.0, 111.0, 123.0]


def test_zero_deadband_sends_changes_only_and_no_deadband_sends_all():
    step, _ = chain(TagRules(deadband=0))
    assert [r.value for r in feed(step, [1, 1, 2, 2, True, True, "a", "a"])] == [1, 2, True, "a"]
    step, _ = chain(None)
    assert len(feed(step, [1, 1, 1])) == 3


def test_quality_change_always_passes():
    step, _ = chain(TagRules(deadband=100))
    out = step(Reading("t", 1.0, 1.0)) + step(Reading("t", None, 2.0, "bad", reason="timeout")) + step(Reading("t", 1.0, 3.0))
    assert [r.quality for r in out] == ["good", "bad", "good"]


def test_heartbeat_due_for_change_driven_sources():
    band = Deadband(0.0, heartbeat=10)
    assert band(Reading("t", 5, 100.0))
    assert band.due(105.0) is None
    hb = band.due(110.0)
    assert hb.value == 5 and hb.ts == 110.0
    assert band.due(115.0) is None


def test_limits_raise_and_clear_with_hysteresis():
    step, _ = chain(TagRules(deadband=0, limits=Limits(high=190, high_high=200, low=150, hysteresis=2)))
    alarms = [r for r in feed(step, [180, 191, 201, 199, 189, 187, 149, 160]) if r.type == ALARM]
    got = [(r.value, r.fields["alarm"], r.fields["state"], r.fields["severity"]) for r in alarms]
    assert got == [
        (191, "high", "raised", "warning"),
        (201, "high_high", "raised", "alarm"),
        # 199 is inside high_high but not by the hysteresis (2): still raised
        (189, "high_high", "cleared", "alarm"),
        # 189 is only 1 below high: still raised; 187 clears it
        (187, "high", "cleared", "warning"),
        (149, "low", "raised", "warning"),
        (160, "low", "cleared", "warning"),
    ]
    assert all(r.unit == "degC" and r.tag == "t" and r.fields["limit"] is not None for r in alarms)


def test_a_jump_over_two_limits_raises_both_inner_first_and_clears_outer_first():
    step, _ = chain(TagRules(limits=Limits(high=10, high_high=20)))
    up = [r.fields["alarm"] for r in step(Reading("t", 25, 1.0)) if r.type == ALARM]
    down = [r.fields["alarm"] for r in step(Reading("t", 0, 2.0)) if r.type == ALARM]
    assert up == ["high", "high_high"] and down == ["high_high", "high"]


def test_bad_readings_hold_alarm_state_and_alarms_bypass_the_deadband():
    step, _ = chain(TagRules(deadband=1000, limits=Limits(high=10)))
    out = step(Reading("t", 5, 1.0))
    out += step(Reading("t", 11, 2.0))  # within the deadband: no telemetry, but the alarm
    out += step(Reading("t", None, 3.0, "bad", reason="timeout"))
    out += step(Reading("t", 12, 4.0))  # still raised: no second alarm
    assert [(r.type, r.value) for r in out] == [(TELEMETRY, 5), (ALARM, 11), (TELEMETRY, None), (TELEMETRY, 12)]


def test_plausibility_and_stuck_value():
    step, _ = chain(TagRules(plausible=Plausible(min=-40, max=125, stuck_after=3)))
    out = feed(step, [20.0, 130.0, -50.0, 21.0, 21.0, 21.0, 21.0, 21.0, 22.0])
    assert [(r.quality, r.reason and r.reason.split(":")[0]) for r in out] == [
        ("good", None), ("bad", "implausible"), ("bad", "implausible"),
        ("good", None), ("good", None), ("good", None), ("bad", "stuck"), ("bad", "stuck"), ("good", None),
    ]
    assert out[1].value == 130.0 and "above 125" in out[1].reason


def test_implausible_values_never_raise_alarms():
    step, _ = chain(TagRules(limits=Limits(high=50), plausible=Plausible(max=125)))
    assert [r.type for r in step(Reading("t", 200.0, 1.0))] == [TELEMETRY]


def test_limits_must_rise():
    with pytest.raises(ValidationError, match="limits must rise"):
        Limits(low=10, high=5)
    with pytest.raises(ValidationError, match="at least one"):
        Limits()
