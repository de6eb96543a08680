"""Per-tag rules as small callables: plausibility, limits (alarms), deadband with heartbeat.

`chain(rules, unit)` composes them for one tag into `step(reading) -> list[Reading]`. Invariants:
- Order: plausibility first (an implausible value becomes a bad reading with a reason, never data),
  then limits (on good numeric values only), then the deadband (on telemetry only).
- Alarm records are never suppressed by the deadband: every raise and clear is emitted once.
- A bad reading neither raises nor clears a limit: the alarm state holds until a good value decides.
- Quality or reason changes always pass the deadband, so a fault is reported the moment it starts and
  the moment it ends.
- Time is the reading's `ts`, never the wall clock: the rules are pure functions of their input.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from drivers.common.config import Limits, Plausible, TagRules
from gateway.kit import ALARM, Reading

Step = Callable[[Reading], list[Reading]]

# (name, limit field, direction, severity), in the order raises are emitted
LEVELS = (
    ("high", "high", 1, "warning"),
    ("high_high", "high_high", 1, "alarm"),
    ("low", "low", -1, "warning"),
    ("low_low", "low_low", -1, "alarm"),
)


def numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def plausibility(cfg: Plausible) -> Callable[[Reading], Reading]:
    """Turn out-of-range or stuck values into bad readings with a reason; other readings pass as they are."""
    last: list[Any] = [None, None]  # value, ts since which it has not changed

    def check(r: Reading) -> Reading:
        if r.quality == "bad" or not numeric(r.value):
            return r
        if cfg.min is not None and r.value < cfg.min:
            return dataclasses.replace(r, quality="bad", reason=f"implausible: {r.value} below {cfg.min}")
        if cfg.max is not None and r.value > cfg.max:
            return dataclasses.replace(r, quality="bad", reason=f"implausible: {r.value} above {cfg.max}")
        if cfg.stuck_after is not None:
            if r.value != last[0]:
                last[:] = [r.value, r.ts]
            elif r.ts - last[1] >= cfg.stuck_after:
                return dataclasses.replace(r, quality="bad", reason=f"stuck: {r.value} unchanged for {r.ts - last[1]:.0f} s")
        return r

    return check


def limits(cfg: Limits) -> Callable[[Reading], list[Reading]]:
    """Alarm records for every limit the value crossed since the last good reading (raised or cleared)."""
    active: set[str] = set()

    def check(r: Reading) -> list[Reading]:
        if r.quality != "good" or not numeric(r.value):
            return []
        raised, cleared = [], []
        for name, field, sign, severity in LEVELS:
            limit = getattr(cfg, field)
            if limit is None:
                continue
            beyond = (r.value - limit) * sign > 0
            back = (limit - r.value) * sign >= cfg.hysteresis
            if name not in active and beyond:
                active.add(name)
                state, word, into = "raised", ("above" if sign > 0 else "below"), raised
            elif name in active and back:
                active.discard(name)
                state, word, into = "cleared", "back inside", cleared
            else:
                continue
            into.append(
                Reading(
                    r.tag, r.value, r.ts, "good", r.unit,
                    reason=f"{r.tag} {r.value} {word} {name} limit {limit}",
                    type=ALARM,
                    fields={"alarm": name, "state": state, "limit": limit, "severity": severity},
                )
            )
        # as the value walks: clears from the outer limit inwards, then raises from the inner limit outwards
        return cleared[::-1] + raised

    return check


class Deadband:
    """Report by exception: decides whether a reading is worth sending, and remembers what was sent.

    `deadband=None` sends every reading; otherwise a value is sent when it moved more than the band
    from the last *sent* value (percent: of that value's magnitude), when quality or reason changed, or
    when `heartbeat` seconds passed since the last send.
    """

    def __init__(self, deadband: float | None, mode: str = "absolute", heartbeat: float | None = None):
        self.band, self.mode, self.heartbeat = deadband, mode, heartbeat
        self.last: Reading | None = None

    def __call__(self, r: Reading) -> bool:
        last = self.last
        send = (
            last is None
            or self.band is None
            or r.quality != last.quality
            or r.reason != last.reason
            or (self.heartbeat is not None and r.ts - last.ts >= self.heartbeat)
            or self._moved(last.value, r.value)
        )
        if send:
            self.last = r
        return send

    def _moved(self, old: Any, new: Any) -> bool:
        if not (numeric(old) and numeric(new)):
            return old != new
        band = self.band * abs(old) / 100 if self.mode == "percent" else self.band
        return abs(new - old) > band if band else new != old

    def due(self, now: float) -> Reading | None:
        """The last sent reading, restamped, if the heartbeat is due at `now` (for drivers fed by changes only)."""
        if self.heartbeat is None or self.last is None or now - self.last.ts < self.heartbeat:
            return None
        self.last = dataclasses.replace(self.last, ts=now, raw=None, ack=None)
        return self.last


def inert(rules: TagRules | None) -> bool:
    """True when `chain(rules)` passes every reading through unchanged: callers may skip it."""
    return rules is None or (rules.deadband is None and rules.heartbeat is None and rules.limits is None and rules.plausible is None)


def chain(rules: TagRules | None, pre: Callable[[Reading], Reading] | None = None) -> tuple[Step, Deadband]:
    """Compose a tag's rules; `pre` is a driver-specific plausibility check run first (e.g. DS18B20 85 °C)."""
    rules = rules or TagRules()
    plaus = plausibility(rules.plausible) if rules.plausible else None
    alarm = limits(rules.limits) if rules.limits else None
    band = Deadband(rules.deadband, rules.deadband_mode, rules.heartbeat)

    def step(r: Reading) -> list[Reading]:
        if pre is not None:
            r = pre(r)
        if plaus is not None:
            r = plaus(r)
        out = alarm(r) if alarm is not None else []
        if band(r):
            out.insert(0, r)
        return out

    return step, band
