"""OPC UA and Modbus RTU devices through the real supervisor, capture log, JSON sink and mosquitto: a
server restart, an untrusted server, one silent unit on a shared RS-485 bus, limits and alarms
stamped with the work order, and deadband with heartbeat — all judged at the broker.
"""

from __future__ import annotations

import asyncio
import shutil
import time

from simulators.modbus import ModbusSim
from simulators.opcua import OpcUaSim, make_certificate
from tests.conftest import InProcess, Upstream, eventually, write_config
from tests.helpers import epoch, newer

ALL = "shopfloor/#"


def health(st: dict, name: str) -> dict:
    return next(d for d in st["devices"] if d["device"] == name)


async def wait_health(gw: InProcess, name: str, predicate, timeout: float = 20.0) -> dict:
    d: dict = {}
    try:
        async with asyncio.timeout(timeout):
            while not predicate(d := health(await gw.status(), name)):
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting on {name}; last status: {d}") from None
    return d


def opcua(sim: OpcUaSim, name: str = "ua", **kw) -> dict:
    return {
        "kind": "opcua", "name": name, "url": sim.url, "timeout": 2, "watchdog": 0.5, "sampling": 0.1,
        "connect_timeout": 5, "backoff_initial": 0.1, "backoff_max": 0.5,
        "nodes": [
            {"name": "hydraulic_pressure", "node": sim.nodeid("hydraulic_pressure"), "unit": "bar"},
            {"name": "recipe", "node": sim.nodeid("recipe")},
        ],
        **kw,
    }


async def test_opcua_server_restart_resumes_the_flow_at_the_broker(tmp_path, broker):
    async with OpcUaSim(period=0.05, cert_dir=tmp_path / "server") as sim:
        path = write_config(tmp_path, broker.port, [opcua(sim)])
        async with Upstream(broker.port, ALL) as up, InProcess(path) as gw:
            await up.wait(lambda rs: len(up.of(device="ua", tag="hydraulic_pressure", quality="good")) >= 5)
            first = up.of(device="ua", tag="recipe")[0]
            assert first["value"] == "RCP-A42" and first["_topic"] == "shopfloor/plant1/assembly/line1/st10/ua/telemetry"
            assert health(await gw.status(), "ua")["state"] == "connected"

            await sim.stop()  # the server goes away: session and subscription are gone
            down = await wait_health(gw, "ua", lambda d: d["state"] == "down")
            assert sim.url in down["reason"], down
            await sim.start()  # a brand-new server on the same port
            t_back = time.time()
            await up.wait(lambda rs: len(newer(up, "ua", t_back, tag="hydraulic_pressure", quality="good")) >= 5)
            st = await wait_health(gw, "ua", lambda d: d["state"] == "connected")
            assert st["outages"] == 1 and st["reason"] is None
            assert sim.starts == 2

            # The same through sim.restart(): a second outage, recovered on its own.
            await sim.restart(downtime=0.3)
            t_back = time.time()
            await up.wait(lambda rs: len(newer(up, "ua", t_back, tag="hydraulic_pressure", quality="good")) >= 5)
            st = await wait_health(gw, "ua", lambda d: d["state"] == "connected" and d["outages"] == 2)
            assert (await gw.status())["uptime"] > 0 and gw.task is not None and not gw.task.done()
    seqs = [r["seq"] for r in up.records]
    assert len(seqs) == len(set(seqs))


async def test_untrusted_opcua_server_fails_with_a_clear_error_and_others_flow(tmp_path, broker):
    pki = tmp_path / "pki"
    cert, key = make_certificate(pki / "own", "gateway", "urn:shopfloor:gateway", server=False)
    other, _ = make_certificate(pki / "other", "someone-else", "urn:other", server=True)
    (pki / "trusted").mkdir()
    shutil.copy(other, pki / "trusted" / "other.der")  # trusts someone, not this server
    async with OpcUaSim(period=0.05, cert_dir=tmp_path / "server") as sim:
        security = {"certificate": str(cert), "private_key": str(key), "trust": [str(pki / "trusted")]}
        devices = [
            opcua(sim, "ua_secure", security=security),
            opcua(sim, "ua_plain"),
            {"kind": "synthetic", "name": "oven", "rate": 20, "tags": 1},
        ]
        path = write_config(tmp_path, broker.port, devices)
        async with Upstream(broker.port, ALL) as up, InProcess(path) as gw:
            failed = await wait_health(gw, "ua_secure", lambda d: d["state"] == "failed")
            assert "not trusted" in failed["reason"] and "CN=simulator" in failed["reason"], failed
            assert "thumbprint" in failed["reason"] and str(pki / "trusted") in failed["reason"]
            t0 = time.time()
            await up.wait(lambda rs: len(newer(up, "ua_plain", t0)) >= 5 and len(newer(up, "oven", t0)) >= 5)
            st = await gw.status()
            assert health(st, "ua_plain")["state"] == "connected" and health(st, "oven")["state"] == "connected"
            assert health(st, "ua_secure")["state"] == "failed"  # fatal: not retried, stays failed
            assert not up.of(device="ua_secure")


async def test_rtu_bus_one_silent_unit_goes_bad_the_other_keeps_flowing(tmp_path, broker):
    async with ModbusSim(rtu="pty", units=(1, 2), moving=False) as sim:
        bus = {
            "kind": "modbus_rtu", "name": "bus1", "port": sim.device, "baudrate": 19200, "timeout": 0.2,
            "units": [
                {"unit": 1, "polls": [{"interval": 0.1, "tags": [{"name": "u1.spindle_speed", "address": 6, "unit": "rpm"}]}]},
                {"unit": 2, "polls": [{"interval": 0.1, "tags": [{"name": "u2.spindle_speed", "address": 6, "unit": "rpm"}]}]},
            ],
        }
        path = write_config(tmp_path, broker.port, [bus])
        async with Upstream(broker.port, ALL) as up, InProcess(path) as gw:
            await up.wait(lambda rs: all(len(up.of(tag=t, quality="good")) >= 3 for t in ("u1.spindle_speed", "u2.spindle_speed")))
            assert {r["value"] for r in up.of(device="bus1")} == {1450}
            sim.faults[2] = "silent"
            t_fault = time.time()
            await up.wait(lambda rs: len(newer(up, "bus1", t_fault, tag="u2.spindle_speed", quality="bad")) >= 3)
            first_bad = newer(up, "bus1", t_fault, tag="u2.spindle_speed", quality="bad")[0]
            assert first_bad["reason"] == "timeout: unit 2 did not answer within 0.2 s" and first_bad["value"] is None
            # unit 1 keeps flowing good after unit 2 went quiet
            since = time.time()
            await up.wait(lambda rs: len(newer(up, "bus1", since, tag="u1.spindle_speed", quality="good")) >= 3)
            assert not newer(up, "bus1", t_fault, tag="u1.spindle_speed", quality="bad")
            assert not newer(up, "bus1", epoch(first_bad["ts"]), tag="u2.spindle_speed", quality="good")
            st = health(await gw.status(), "bus1")
            assert st["state"] == "connected" and st["outages"] == 0 and st["bad"] >= 3  # the bus is fine
            sim.faults[2] = None
            t_back = time.time()
            await up.wait(lambda rs: len(newer(up, "bus1", t_back, tag="u2.spindle_speed", quality="good")) >= 1)
            assert newer(up, "bus1", t_back, tag="u2.spindle_speed", quality="good")[0]["value"] == 1450


async def test_limit_alarm_is_raised_and_cleared_at_the_broker_with_work_order_and_lot(tmp_path, broker):
    async with ModbusSim(port=0) as sim:
        press = {
            "kind": "modbus", "name": "press1", "host": "127.0.0.1", "port": sim.port, "timeout": 0.5,
            "polls": [{"interval": 0.1, "tags": [
                {"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC",
                 "limits": {"high": 190, "high_high": 250, "hysteresis": 1}},
            ]}],
        }
        path = write_config(tmp_path, broker.port, [press])
        async with Upstream(broker.port, ALL) as up, InProcess(path) as gw:
            rsp = await gw.request(cmd="context", action="start", work_order="WO-4711", lot="LOT-88", operation="OP20")
            assert rsp["ok"], rsp
            ctx_id = rsp["context"]["context_id"]
            await up.wait(lambda rs: any(r["type"] == "telemetry" and r.get("work_order") == "WO-4711" for r in rs))
            assert not up.of(type="alarm")  # 180 ± 4 is inside the limits
            await sim.set("press_temperature", 195.0)
            await up.wait(lambda rs: any(r["type"] == "alarm" for r in rs))
            (raised,) = up.of(type="alarm")
            assert raised["state"] == "raised" and raised["alarm"] == "high" and raised["severity"] == "warning"
            assert raised["value"] == 195.0 and raised["limit"] == 190 and raised["tag"] == "press_temperature"
            assert raised["work_order"] == "WO-4711" and raised["lot"] == "LOT-88" and raised["context_id"] == ctx_id
            assert raised["context"] == "active" and raised["operation"] == "OP20"
            assert raised["_topic"] == "shopfloor/plant1/assembly/line1/st10/press1/alarm"
            assert "195.0 above high limit 190" in raised["reason"]
            sim.release("press_temperature")  # back to 180 ± 4
            await up.wait(lambda rs: len([r for r in rs if r["type"] == "alarm"]) >= 2)
            cleared = up.of(type="alarm")[1]
            assert cleared["state"] == "cleared" and cleared["alarm"] == "high" and cleared["value"] <= 189
            assert cleared["work_order"] == "WO-4711" and cleared["lot"] == "LOT-88"
            # Alarms are protected records and follow the telemetry order of their device.
            assert raised["seq"] < cleared["seq"]
            assert len(up.of(type="alarm")) == 2  # one raise, one clear: no chatter


async def test_deadband_sends_a_pinned_value_once_then_again_after_the_heartbeat(tmp_path, broker):
    async with ModbusSim(port=0) as sim:
        await sim.set("spindle_speed", 1500)
        press = {
            "kind": "modbus", "name": "press1", "host": "127.0.0.1", "port": sim.port, "timeout": 0.5,
            "polls": [{"interval": 0.05, "tags": [
                {"name": "spindle_speed", "address": 6, "unit": "rpm", "deadband": 5, "heartbeat": 1.0},
            ]}],
        }
        path = write_config(tmp_path, broker.port, [press])
        async with Upstream(broker.port, ALL) as up, InProcess(path):
            await up.wait(lambda rs: len(up.of(tag="spindle_speed")) >= 1)
            polls_at_first = sim.requests
            await up.wait(lambda rs: len(up.of(tag="spindle_speed")) >= 2)
            polls_between = sim.requests - polls_at_first
            first, second = up.of(tag="spindle_speed")[:2]
            assert first["value"] == second["value"] == 1500
            assert epoch(second["ts"]) - epoch(first["ts"]) >= 1.0  # the second one is the heartbeat, not a poll
            assert polls_between >= 5  # the PLC was polled all along; the unchanged value was held back
            await sim.set("spindle_speed", 1503)  # inside the deadband of 5: not sent
            polled = sim.requests
            await eventually(lambda: sim.requests >= polled + 5, what="polls of 1503")  # the gateway read it several times
            await sim.set("spindle_speed", 1520)  # outside: sent at once
            await up.wait(lambda rs: any(r["value"] == 1520 for r in up.of(tag="spindle_speed")))
            values = [r["value"] for r in up.of(tag="spindle_speed")]
            assert 1503 not in values

