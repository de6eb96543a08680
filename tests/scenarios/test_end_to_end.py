"""Readings travel from a device through the real capture log to a real mosquitto and a subscriber."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson

from tests.conftest import InProcess, Upstream, write_config

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "gateway" / "schemas" / "record-v1.json").read_text())

KEYS = {"gateway_id", "seq", "ts", "station", "device", "tag", "value", "quality", "work_order", "lot", "context"}


async def test_readings_are_stamped_with_the_context_set_while_running(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [{"kind": "synthetic", "name": "press", "rate": 200, "tags": 3, "unit": "degC"}])
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
        await up.wait(lambda rs: len([r for r in rs if r["type"] == "telemetry"]) >= 20)
        first = up.of(type="telemetry")[0]
        assert KEYS <= first.keys()
        assert first["context"] == "unassigned" and first["work_order"] is None and first["lot"] is None
        assert first["_topic"] == "shopfloor/plant1/assembly/line1/st10/press/telemetry"
        assert first["gateway_id"] == "gw-test" and first["unit"] == "degC" and first["quality"] == "good"

        rsp = await gw.request(cmd="context", action="start", work_order="WO-42", lot="LOT-7", operation="OP10", operators=["op1"])
        assert rsp["ok"], rsp
        ctx_id = rsp["context"]["context_id"]
        await up.wait(lambda rs: any(r.get("work_order") == "WO-42" and r["type"] == "telemetry" for r in rs))
        stamped = [r for r in up.of(type="telemetry") if r["work_order"] == "WO-42"]
        assert all(r["lot"] == "LOT-7" and r["context"] == "active" and r["context_id"] == ctx_id for r in stamped)
        assert stamped[0]["operators"] == ["op1"] and stamped[0]["operation"] == "OP10"

        # The change itself is a record upstream, on the station's context topic.
        await up.wait(lambda rs: any(r["type"] == "context" for r in rs))
        (ev,) = up.of(type="context")
        assert ev["event"] == "started" and ev["work_order"] == "WO-42" and ev["source"] == "cli"
        assert ev["_topic"] == "shopfloor/plant1/assembly/line1/st10/context"

        # Before the change, unassigned; after it, never unassigned again: no reading straddles.
        tele = up.of(type="telemetry")
        switch = next(i for i, r in enumerate(tele) if r["work_order"] == "WO-42")
        assert all(r["context"] == "unassigned" for r in tele[:switch])
        assert all(r["context"] == "active" for r in tele[switch:])

        assert (await gw.request(cmd="context", action="end"))["ok"]
        await up.wait(lambda rs: any(r.get("event") == "ended" for r in rs))
    seqs = [r["seq"] for r in up.records]
    assert len(seqs) == len(set(seqs))
    for r in up.records:  # every record follows the published schema
        jsonschema.validate({k: v for k, v in r.items() if k != "_topic"}, SCHEMA)


async def test_mes_command_sets_the_context_and_bad_commands_are_refused(tmp_path, broker):
    import aiomqtt

    path = write_config(tmp_path, broker.port, [{"kind": "synthetic", "name": "press", "rate": 100, "tags": 1}])
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
        await up.wait(lambda rs: len(rs) > 0)
        async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
            topic = "shopfloor/plant1/assembly/line1/st10/cmd/context"
            await mes.publish(topic, b"{not json", qos=1)
            await mes.publish(topic, orjson.dumps({"action": "launch"}), qos=1)
            await mes.publish(topic, orjson.dumps({"action": "start", "work_order": "WO-MES", "lot": "L-M"}), qos=1)
        # The context record and the readings stamped after it travel on different topics, so in
        # different messages: either may arrive first.
        await up.wait(lambda rs: any(r.get("work_order") == "WO-MES" and r["type"] == "telemetry" for r in rs)
                      and any(r["type"] == "context" for r in rs))
        ev = up.of(type="context")[-1]
        assert ev["source"] == "mes" and ev["event"] == "started"
        st = await gw.status()
        assert (st["commands"]["accepted"], st["commands"]["rejected"]) == (1, 2)
        assert st["commands"]["reasons"] == {"not_json": 1, "invalid": 1}
        assert st["contexts"]["st10"]["work_order"] == "WO-MES"


async def test_context_survives_a_restart(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [{"kind": "synthetic", "name": "press", "rate": 100, "tags": 1}])
    async with InProcess(path) as gw:
        assert (await gw.request(cmd="context", action="start", work_order="WO-9", lot="L9"))["ok"]
    async with Upstream(broker.port, "shopfloor/+/+/+/st10/press/telemetry") as up, InProcess(path):
        await up.wait(lambda rs: len(rs) >= 5)
        assert all(r["work_order"] == "WO-9" and r["lot"] == "L9" for r in up.records)


async def test_one_object_per_message_when_packing_is_off(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [{"kind": "synthetic", "name": "press", "rate": 200, "tags": 2}], mqtt={"max_pack": 1})
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path):
        await up.wait(lambda rs: len(rs) >= 10)
        assert all(isinstance(p, dict) for t, p in up.messages if "/press/" in t)


async def test_plc_simulator_readings_arrive_stamped(tmp_path, broker):
    """The demo's path: the Modbus PLC simulator, the modbus driver, the capture log, mosquitto."""
    from simulators.modbus import ModbusSim

    async with ModbusSim(port=0) as sim:
        tags = [
            {"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC"},
            {"name": "cycle_counter", "address": 4, "type": "uint32"},
            {"name": "motor_current", "address": 7, "type": "int16", "scale": 0.1, "unit": "A"},
            {"name": "door_closed", "table": "discrete", "address": 0, "type": "bool"},
        ]
        dev = {"kind": "modbus", "name": "press1", "host": "127.0.0.1", "port": sim.port, "polls": [{"interval": 0.1, "tags": tags}]}
        path = write_config(tmp_path, broker.port, [dev])
        async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
            await up.wait(lambda rs: len(rs) >= 8)
            first = up.of(tag="press_temperature")[0]
            assert KEYS <= first.keys() and first["context"] == "unassigned" and first["device_kind"] == "modbus"
            assert 170 < first["value"] < 190 and first["quality"] == "good"
            assert up.of(tag="door_closed")[0]["value"] is True
            assert (await gw.request(cmd="context", action="start", work_order="WO-7", lot="L-7"))["ok"]
            await up.wait(lambda rs: any(r.get("tag") == "cycle_counter" and r["work_order"] == "WO-7" for r in rs))
            rec = [r for r in up.of(tag="cycle_counter") if r["work_order"] == "WO-7"][0]
            assert rec["lot"] == "L-7" and rec["context"] == "active" and rec["value"] >= 100000
    for r in up.records:
        jsonschema.validate({k: v for k, v in r.items() if k != "_topic"}, SCHEMA)


async def test_control_socket_in_a_deep_folder(tmp_path, broker):
    """sockaddr_un holds 107 bytes; a deeper buffer folder must still give a working control socket."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = write_config(deep, broker.port, [{"kind": "synthetic", "name": "press", "rate": 10, "tags": 1}])
    async with InProcess(path) as gw:
        assert len(str(gw.cfg.control_socket)) > 107
        assert (await gw.status())["running"]
