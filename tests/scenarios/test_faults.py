"""A fault stays where it happens: a driver raising what nobody listed, or a stage after the driver
(scan rules, stamping, encoding) failing, costs that device or that reading its good quality —
never the reading itself, and never another device's capture. Real mosquitto, real processes."""

from __future__ import annotations

import asyncio
import base64

import pytest

from gateway.capture import pipeline as pipeline_mod
from gateway.station.scan import rules as rules_mod
from simulators.scanner import SerialScanner
from tests.conftest import InProcess, Process, Upstream, write_config
from tests.helpers import Control

GOOD = {"kind": "synthetic", "name": "oven", "rate": 50, "tags": 1}


def crashing(kind: str) -> dict:
    return {"kind": "synthetic", "name": "press", "rate": 100, "tags": 1, "crash_every": 5, "crash_with": kind,
            "backoff_initial": 0.05, "backoff_max": 0.2}


@pytest.mark.parametrize("kind", ["ZeroDivisionError", "EOFError", "IncompleteReadError", "AssertionError", "KeyError"])
async def test_a_driver_raising_an_unlisted_exception_is_marked_crashed_and_restarted(tmp_path, broker, kind):
    path = write_config(tmp_path, broker.port, [GOOD, crashing(kind)])
    gw = Process(path, tmp_path / "gw.log")
    async with Upstream(broker.port, "shopfloor/#") as up:
        gw.start()
        try:
            ctl = Control(path)
            async with asyncio.timeout(30):
                while True:
                    press = await ctl.device("press")
                    if press["crashes"] >= 3:
                        break
                    await asyncio.sleep(0.05)
            assert press["state"] in ("crashed", "connected")
            assert press["error"]["type"] == kind and press["error"]["message"].startswith(kind + ": ")
            # Restarted each time (it delivers again between crashes), and the oven never stopped.
            seen = len(up.of(device="oven"))
            await up.wait(lambda rs: len([r for r in rs if r.get("device") == "oven"]) > seen + 20)
            await up.wait(lambda rs: len([r for r in rs if r.get("device") == "press"]) >= 12)
            assert (await ctl.device("oven"))["state"] == "connected"
        finally:
            assert gw.terminate() == 0
    crashes = [e for e in gw.events() if e.get("event") == "device_crashed"]
    assert len(crashes) >= 3 and all(e["device"] == "press" for e in crashes)
    # The traceback once, not once per restart.
    assert sum("Traceback" in (e.get("exception") or "") for e in crashes) == 1
    assert kind in crashes[0]["exception"]


def _break(monkeypatch, fault: str) -> None:
    """Make one stage raise for the scanner's readings only (the oven goes through the same code)."""
    if fault == "rules":
        def evaluate(self, *args, **kw):
            raise RuntimeError("rules is broken")
        monkeypatch.setattr(rules_mod.ScanRules, "evaluate", evaluate)
        return
    real = getattr(pipeline_mod, fault)

    def call(*args, **kw):
        device = args[1].device if fault == "stamp" else args[0].get("device")
        if device == "scanner1":
            raise TypeError(f"{fault} is broken")
        return real(*args, **kw)

    monkeypatch.setattr(pipeline_mod, fault, call)


@pytest.mark.parametrize("fault", ["rules", "stamp", "encode"])
async def test_a_stage_that_fails_still_captures_the_reading_as_rejected(tmp_path, broker, monkeypatch, fault):
    _break(monkeypatch, fault)
    sim = SerialScanner(tmp_path / "scanner0")
    sim.plug()
    scanner = {"kind": "scanner_serial", "name": "scanner1", "port": str(tmp_path / "scanner0"), "feedback": "honeywell",
               "backoff_initial": 0.05, "backoff_max": 0.2}
    path = write_config(tmp_path, broker.port, [GOOD, scanner])
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
        await gw.wait_status(lambda st: {d["device"]: d["state"] for d in st["devices"]}["scanner1"] == "connected")
        for text in ("]C10109501101020917", "]C0WO-2024-0042"):
            sim.scan(text)
            assert await sim.next_ack(10) == "bad"  # an answer, at once: the operator is not left waiting
        await up.wait(lambda rs: len([r for r in rs if r.get("device") == "scanner1"]) == 2)
        seen = len(up.of(device="oven"))
        await up.wait(lambda rs: len([r for r in rs if r.get("device") == "oven"]) > seen + 10)
        st = await gw.status()
        scanner = {d["device"]: d for d in st["devices"]}["scanner1"]
        assert scanner["state"] == "connected" and scanner["crashes"] == 0  # the device itself is fine
        assert st["counters"]["internal_errors"] == 2
    sim.unplug()
    scans = up.of(device="scanner1")
    assert [r["raw"] for r in scans] == [base64.b64encode(b"]C10109501101020917").decode(), base64.b64encode(b"]C0WO-2024-0042").decode()]
    for r in scans:
        assert (r["type"], r["quality"], r["status"], r["reason_code"]) == ("scan", "bad", "rejected", "internal_error")
        assert f"{fault} is broken" in r["reason"]
    assert all(r["quality"] == "good" for r in up.of(device="oven"))
    assert up.of(type="context") == []  # the traveler's rejected scan started no order
