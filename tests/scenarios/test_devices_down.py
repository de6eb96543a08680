"""A PLC that stops answering, is switched off, restarts, or answers with exceptions — seen through the
real supervisor, capture log, JSON sink and a real mosquitto. The other device keeps flowing, `status`
shows the outage with its reason, data resumes without restarting the gateway, and the log holds
one event per state change, never one per retry.
"""

from __future__ import annotations

import asyncio
import time

from simulators.modbus import ModbusSim
from tests.conftest import InProcess, Process, Upstream, write_config
from tests.helpers import Control, newer

TELEMETRY = "shopfloor/+/+/+/+/+/telemetry"


def plc(sim: ModbusSim, name: str = "press1", interval: float = 0.1, **kw) -> dict:
    return {
        "kind": "modbus", "name": name, "host": "127.0.0.1", "port": sim.port, "timeout": 0.3,
        "connect_timeout": 2, "backoff_initial": 0.1, "backoff_max": 0.4,
        "polls": [{"interval": interval, "tags": [
            {"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC"},
            {"name": "spindle_speed", "address": 6, "type": "uint16", "unit": "rpm"},
        ]}],
        **kw,
    }


OVEN = {"kind": "synthetic", "name": "oven", "rate": 20, "tags": 1}


async def wait_requests(sim: ModbusSim, more: int, timeout: float = 20.0) -> None:
    """Wait until the PLC received `more` further requests (each one a retry while it is silent)."""
    target = sim.requests + more
    async with asyncio.timeout(timeout):
        while sim.requests < target:
            await asyncio.sleep(0.05)


async def test_plc_silent_switched_off_and_restarted_with_one_log_event_per_transition(tmp_path, broker):
    async with ModbusSim(port=0) as sim, Upstream(broker.port, TELEMETRY) as up:
        path = write_config(tmp_path, broker.port, [plc(sim), OVEN])
        gw = Process(path, tmp_path / "gateway.log")
        ctl = Control(path)
        gw.start()
        try:
            await up.wait(lambda rs: len(up.of(device="press1", quality="good")) >= 5 and len(up.of(device="oven")) >= 5)
            assert (await ctl.device("press1"))["state"] == "connected"

            # 1. The PLC stops answering (TCP still accepted, requests swallowed).
            sim.fault = "silent"
            down = await ctl.wait("press1", lambda d: d["state"] == "down")
            assert "no answer within 0.3 s" in down["reason"], down
            await wait_requests(sim, 6)  # six more attempts went unanswered: the gateway keeps retrying
            oven_seen, t_mark = len(up.of(device="oven")), time.time()
            await up.wait(lambda rs: len(up.of(device="oven")) >= oven_seen + 10)  # the other device flows on
            down = await ctl.device("press1")
            assert down["state"] == "down" and down["outages"] == 1, down
            assert not newer(up, "press1", t_mark)  # nothing from the silent PLC meanwhile
            sim.fault = None
            t_back = time.time()
            await up.wait(lambda rs: len(newer(up, "press1", t_back, quality="good")) >= 3)
            st = await ctl.wait("press1", lambda d: d["state"] == "connected")
            assert st["outages"] == 1 and st["reason"] is None

            # 2. The PLC is switched off (connections refused), then on again.
            await sim.stop()
            down = await ctl.wait("press1", lambda d: d["state"] == "down" and d["attempts"] >= 3)
            assert "cannot open Modbus TCP connection to 127.0.0.1:" in down["reason"], down
            oven_seen = len(up.of(device="oven"))
            await up.wait(lambda rs: len(up.of(device="oven")) >= oven_seen + 10)
            await sim.start()
            t_back = time.time()
            await up.wait(lambda rs: len(newer(up, "press1", t_back, quality="good")) >= 3)
            st = await ctl.wait("press1", lambda d: d["state"] == "connected")
            assert st["outages"] == 2

            # 3. A restart (power cycle with a short downtime) drops the connection once.
            await sim.restart(downtime=0.5)
            t_back = time.time()
            await up.wait(lambda rs: len(newer(up, "press1", t_back, quality="good")) >= 3)
            st = await ctl.wait("press1", lambda d: d["state"] == "connected" and d["outages"] == 3)
            oven = await ctl.device("oven")
            assert oven["state"] == "connected" and oven["outages"] == 0
        finally:
            status = gw.terminate()
    assert status == 0
    events = gw.events()
    names = [e["event"] for e in events]
    assert names.count("gateway_started") == 1  # data resumed without a restart of the gateway
    press = [e["event"] for e in events if e.get("device") == "press1"]
    assert press == ["device_connected"] + ["device_lost", "device_recovered"] * 3, press
    assert [e["event"] for e in events if e.get("device") == "oven"] == ["device_connected"]
    lost = [e for e in events if e["event"] == "device_lost"]
    assert "no answer within 0.3 s" in lost[0]["reason"]


async def test_exception_responses_arrive_as_bad_records_while_the_plc_stays_connected(tmp_path, broker):
    async with ModbusSim(port=0, moving=False) as sim:
        path = write_config(tmp_path, broker.port, [plc(sim), OVEN])
        async with Upstream(broker.port, TELEMETRY) as up, InProcess(path) as gw:
            await up.wait(lambda rs: len(up.of(device="press1", quality="good")) >= 2)
            sim.fault = ("exception", 2)
            await up.wait(lambda rs: len(up.of(device="press1", quality="bad")) >= 4)
            bad = up.of(device="press1", quality="bad")
            assert {r["tag"] for r in bad} == {"press_temperature", "spindle_speed"}
            assert all(r["value"] is None and r["exception_code"] == 2 for r in bad)
            assert all(r["reason"] == "modbus exception 2: illegal data address" for r in bad)
            st = next(d for d in (await gw.status())["devices"] if d["device"] == "press1")
            assert st["state"] == "connected" and st["outages"] == 0 and st["bad"] >= 4
            sim.fault = None
            t_back = time.time()
            await up.wait(lambda rs: {r["tag"] for r in newer(up, "press1", t_back, quality="good")} == {"press_temperature", "spindle_speed"})
            good = newer(up, "press1", t_back, quality="good", tag="spindle_speed")
            assert good[0]["value"] == 1450
            st = next(d for d in (await gw.status())["devices"] if d["device"] == "press1")
            assert st["state"] == "connected" and st["outages"] == 0
