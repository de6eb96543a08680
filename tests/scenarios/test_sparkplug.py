"""The gateway process as a Sparkplug B edge node, watched by an independent host (esio-spb-builder
decodes every message), on a real mosquitto with the Modbus simulator.

The JSON sink runs beside it on the same capture log as a witness: its records carry the log's seq
(checked gapless) and are acknowledged by PUBACK, so every captured reading is known; each must
arrive over Sparkplug too, as (device, tag, ts, value).
"""

from __future__ import annotations

from datetime import datetime

import yaml

from simulators.modbus import POINTS, ModbusSim, Point
from tests.conftest import Process, Upstream, eventually
from tests.helpers import Control
from tests.scenarios.test_outage import gaps
from tests.sparkplug_host import Host

GROUP = "plant1"
NODE = "gw-spb"
TELEMETRY = "shopfloor/+/+/+/+/+/telemetry"
# A counter the PLC steps every 0.2 s (an integer metric beside the float one), sent on change.
TICKS = Point("ticks", "holding", 40, "uint32", "ABCD", None, lambda t: int(t / 0.2))


def config(tmp_path, broker_port: int, sim: ModbusSim, **sparkplug):
    doc = {
        "gateway": {"id": NODE, "site": "plant1", "area": "assembly", "line": "line1", "stations": ["st10"]},
        "northbound": [
            {"kind": "mqtt", "host": "127.0.0.1", "port": broker_port},
            {"kind": "sparkplug", "host": "127.0.0.1", "port": broker_port, "group_id": GROUP, "primary_host_id": "scada",
             "reconnect_max": 0.5, "keepalive": 5, **sparkplug},
        ],
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "log": {"level": "info", "format": "json"},
        "devices": [{
            "kind": "modbus", "name": "press1", "host": "127.0.0.1", "port": sim.port, "timeout": 0.3, "connect_timeout": 2,
            "backoff_initial": 0.1, "backoff_max": 0.4,
            "polls": [{"interval": 0.05, "tags": [
                {"name": "ticks", "address": 40, "type": "uint32", "deadband": 0},
                {"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC", "deadband": 0},
            ]}],
        }],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def key_of_record(r) -> tuple:
    return (r["device"], r["tag"], round(datetime.fromisoformat(r["ts"]).timestamp() * 1000), r["value"])


def missing(up: Upstream, host: Host) -> list[tuple]:
    """Readings the witness saw that never came over Sparkplug."""
    got = {(v.device, v.name, v.ts, v.value) for v in host.books.values}
    return [k for k in map(key_of_record, up.records) if k not in got]


def assert_clean(host: Host) -> None:
    b = host.books
    assert not b.gaps, f"seq gaps: {b.gaps[:5]}"
    assert not b.unresolved, f"aliases never born: {b.unresolved[:5]}"
    for m in b.of("DBIRTH"):
        assert all(x["name"] and x["alias"] is not None and x["datatype"] for x in m.decoded["metrics"])
    assert all(m.qos == 0 and not m.retain for m in b.messages if m.kind != "NDEATH")


async def all_arrived(up: Upstream, host: Host, timeout: float = 30.0) -> None:
    await eventually(lambda: up.records and not missing(up, host), timeout=timeout, what="every witnessed reading over Sparkplug")
    assert not gaps(up.records), "the witness itself has a gap"


def outage_values(host: Host, bd_seq: int):
    return [v for v in host.books.values if v.bd_seq == bd_seq and v.historical]


async def test_births_rebirth_device_death_and_a_primary_host_outage(tmp_path, broker):
    async with ModbusSim(port=0, points=(*POINTS, TICKS)) as sim, Upstream(broker.port, TELEMETRY) as up, Host(broker.port, GROUP) as host:
        gw = Process(config(tmp_path, broker.port, sim), tmp_path / "gateway.log")
        gw.start()
        try:
            await host.wait(lambda b: len(b.values) >= 20, what="data")
            birth = next(m for m in host.books.of("DBIRTH") if m.device == "press1")
            assert {x["name"]: x["datatype"] for x in birth.decoded["metrics"]} == {"ticks": 4, "press_temperature": 10}
            assert host.books.bd_seqs == [0]

            await host.rebirth(NODE)
            await host.wait(lambda b: len(b.of("NBIRTH")) == 2 and b.messages[-1].kind != "NBIRTH", what="the rebirth")
            assert host.books.bd_seqs == [0, 0]

            await host.say(False)
            await host.wait(lambda b: b.of("NDEATH"), what="the node's NDEATH on the host going offline")
            during = len(up.records)
            await eventually(lambda: len(up.records) >= during + 20, what="readings captured while the host is offline")
            await host.say(True)
            await all_arrived(up, host)
            assert host.books.bd_seqs == [0, 0, 1]
            assert len(outage_values(host, 1)) >= 20  # what waited for the host came flagged historical

            await sim.stop()
            await host.wait(lambda b: b.messages[-1].kind == "DDEATH" and b.messages[-1].device == "press1", what="DDEATH of the stopped PLC")
            await sim.start()
            await host.wait(lambda b: b.of("DDEATH") and b.messages.index(b.of("DDEATH")[-1]) < max(
                i for i, m in enumerate(b.messages) if m.kind == "DBIRTH" and m.device == "press1"), what="DBIRTH of the PLC back")
            await all_arrived(up, host)
            assert_clean(host)
        finally:
            assert gw.terminate() == 0


async def test_a_broker_outage_is_replayed_as_historical_data(tmp_path, broker):
    async with ModbusSim(port=0, points=(*POINTS, TICKS)) as sim, Upstream(broker.port, TELEMETRY) as up, Host(broker.port, GROUP) as host:
        path = config(tmp_path, broker.port, sim)
        gw = Process(path, tmp_path / "gateway.log")
        gw.start()
        try:
            await host.wait(lambda b: len(b.values) >= 20, what="data")
            broker.stop()
            ctl = Control(path)
            read = (await ctl.status())["counters"]["read"]
            await eventually(lambda: _read_more(ctl, read + 40), what="readings captured during the outage")
            broker.start()
            await eventually(lambda: len({r["seq"] for r in up.records}) >= read + 40, timeout=30, what="the witness after the outage")
            await all_arrived(up, host)
            assert host.books.bd_seqs == [0, 1] and len(outage_values(host, 1)) >= 40  # attempts the broker refused used no bdSeq
            assert_clean(host)
        finally:
            assert gw.terminate() == 0


async def _read_more(ctl: Control, target: int) -> bool:
    return (await ctl.status())["counters"]["read"] >= target


async def test_sigkill_loses_no_data_point_and_the_restart_has_a_new_bdseq_and_births(tmp_path, broker):
    async with ModbusSim(port=0, points=(*POINTS, TICKS)) as sim, Upstream(broker.port, TELEMETRY) as up, Host(broker.port, GROUP) as host:
        gw = Process(config(tmp_path, broker.port, sim), tmp_path / "gateway.log")
        gw.start()
        try:
            await host.wait(lambda b: len(b.values) >= 60, what="data")
            gw.kill()
            killed = len(host.books.messages)
            gw.start()
            await host.wait(lambda b: [m.kind for m in b.messages[killed:] if m.kind != "NDEATH"][:2] == ["NBIRTH", "DBIRTH"], what="the new session's births")
            assert host.books.bd_seqs == [0, 1]
            will = host.books.of("NDEATH")  # the broker published the dead session's Will
            assert [m.decoded["metrics"][0]["value"] for m in will] == [0] and will[0].qos == 1
            await eventually(lambda: len(up.records) >= 200, what="readings after the restart")
            await all_arrived(up, host)
            historical = [v for v in host.books.values if v.bd_seq == 1 and v.historical]
            assert historical, "what the killed process had captured and not sent came after the restart, historical"
            assert_clean(host)
        finally:
            assert gw.terminate() == 0
