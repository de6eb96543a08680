"""The station context state machine."""

from __future__ import annotations

import pytest

from gateway.station.context import Change, Context, ContextRefused, apply


def start(wo, source="cli", **kw):
    return Change("start", source, work_order=wo, **kw)


def test_start_update_end():
    c0 = Context("st10")
    c1, ev = apply(c0, start("WO-1", lot="L1", operation="OP10"), now=1)
    assert c1.active and c1.work_order == "WO-1" and c1.lot == "L1" and c1.version == 1
    assert [e.event for e in ev] == ["started"]
    c2, ev = apply(c1, Change("update", "cli", lot="L2"), now=2)
    assert c2.context_id == c1.context_id and c2.version == 2 and c2.lot == "L2"
    c3, ev = apply(c2, Change("end", "cli"), now=3)
    assert not c3.active and c3.work_order is None and c3.version == 3
    assert ev[0].event == "ended" and ev[0].context.work_order == "WO-1" and ev[0].context.ended_at == 3


def test_changeover_ends_the_old_order_first():
    c1, _ = apply(Context("st10"), start("WO-1", lot="L1"), now=1)
    c2, ev = apply(c1, start("WO-2"), now=2)
    assert [e.event for e in ev] == ["ended", "started"]
    assert ev[0].context.work_order == "WO-1"
    assert c2.work_order == "WO-2" and c2.lot is None and c2.context_id != c1.context_id
    assert c2.version > ev[0].context.version


def test_same_order_again_is_an_update_not_a_new_run():
    c1, _ = apply(Context("st10"), start("WO-1"), now=1)
    c2, ev = apply(c1, start("WO-1", lot="L9"), now=2)
    assert c2.context_id == c1.context_id and [e.event for e in ev] == ["updated"]
    c3, ev = apply(c2, start("WO-1", lot="L9"), now=3)
    assert c3 == c2 and ev == []  # idempotent: a retained MES message re-applied changes nothing


def test_mes_is_authoritative_over_scans():
    c1, _ = apply(Context("st10"), start("WO-1", source="mes"), now=1)
    with pytest.raises(ContextRefused) as exc:
        apply(c1, start("WO-2", source="scan"), now=2)
    assert exc.value.code == "mes_authoritative"
    with pytest.raises(ContextRefused):
        apply(c1, Change("end", "scan"), now=2)
    c2, _ = apply(c1, Change("login", "scan", operators=("op1",)), now=2)  # badges still log in
    assert c2.operators == ("op1",)
    c3, ev = apply(c2, start("WO-2", source="mes"), now=3)
    assert c3.work_order == "WO-2"


def test_operators_log_in_and_out():
    c1, ev = apply(Context("st10"), Change("login", "scan", operators=("op1",)), now=1)
    c2, ev = apply(c1, Change("login", "scan", operators=("op2",)), now=2)
    assert c2.operators == ("op1", "op2")
    c3, ev = apply(c2, Change("logout", "scan", operators=("op1",)), now=3)
    assert c3.operators == ("op2",) and ev[0].event == "operator_out"
    c4, ev = apply(c3, Change("logout", "scan", operators=("op1",)), now=4)
    assert ev == [] and c4 == c3


def test_update_without_an_order_is_refused():
    with pytest.raises(ContextRefused):
        apply(Context("st10"), Change("update", "cli", lot="L1"))


def test_round_trip_json():
    c1, _ = apply(Context("st10"), start("WO-1", operators=("a", "b")), now=1)
    assert Context.from_json(c1.to_json()) == c1


def test_every_event_carries_the_actor_of_its_change():
    c1, (ev,) = apply(Context("st10"), Change("start", "cli", work_order="WO-1", actor="cli:uid=0(root)"), now=1)
    _, (ended, started) = apply(c1, Change("start", "mes", work_order="WO-2").by("mes:c-1/signed"), now=2)
    assert ev.actor == "cli:uid=0(root)"
    assert (ended.event, ended.actor, started.event, started.actor) == ("ended", "mes:c-1/signed", "started", "mes:c-1/signed")


async def test_a_scanned_change_names_the_scanning_device(tmp_path, broker):
    from simulators.scanner import SerialScanner
    from tests.conftest import InProcess, Upstream, write_config

    sim = SerialScanner(tmp_path / "scanner0")
    sim.plug()
    dev = {"kind": "scanner_serial", "name": "scanner1", "port": str(tmp_path / "scanner0"), "feedback": "honeywell"}
    path = write_config(tmp_path, broker.port, [dev])
    try:
        async with Upstream(broker.port, "shopfloor/+/+/+/st10/context") as up, InProcess(path) as gw:
            await gw.wait_status(lambda s: s["devices"][0]["state"] == "connected")
            sim.scan("]C0WO-2024-0042")
            await sim.next_ack(10)
            await up.wait(lambda rs: len(rs) == 1)
    finally:
        sim.unplug()
    assert (up.records[0]["event"], up.records[0]["source"], up.records[0]["actor"]) == ("started", "scan", "scan:scanner1")



from gateway.station import ids  # noqa: E402
from gateway.station.context import MAX_OPERATORS  # noqa: E402


@pytest.mark.parametrize("source", ["scan", "cli", "mes"])
@pytest.mark.parametrize(
    "change",
    [
        Change("start", "scan", work_order="W" * 300_000),
        Change("start", "scan", work_order="WO 1"),
        Change("start", "scan", work_order="WO-1", lot="LOT\x1d42"),
        Change("start", "scan", work_order="WO-1", operation="¹"),
        Change("login", "scan", operators=("op-7", "x" * (ids.MAX_LEN + 1))),
        Change("login", "scan", operators=tuple(f"op-{i}" for i in range(MAX_OPERATORS + 1))),
    ],
    ids=["300KB", "space", "control", "superscript", "long_operator", "too_many_operators"],
)
def test_every_entry_is_held_to_the_identifier_rules(source, change):
    """The one place every change passes (scan, CLI, control socket, MQTT): nothing unbounded gets in."""
    from dataclasses import replace

    with pytest.raises(ContextRefused) as exc:
        apply(Context("st10"), replace(change, source=source))
    assert exc.value.code == "invalid_identifier"


def test_identifiers_within_the_rules_pass():
    ctx, _ = apply(Context("st10"), Change("start", "cli", work_order="WO-2024/0042", lot="L_1.2:3", operators=("op-7",)))
    assert ctx.work_order == "WO-2024/0042" and ids.check("lot", "x" * ids.MAX_LEN)
