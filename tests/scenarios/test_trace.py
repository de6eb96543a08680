"""`trace` on a journal the real gateway wrote: a gateway process reading a Modbus PLC simulator and a
serial scanner on a pty, forwarding to a private mosquitto; a shift scanned; alarms raised and
cleared by the PLC's values; then the traces, first through the running daemon, then on the file."""

from __future__ import annotations

import asyncio
import json

from simulators.modbus import ModbusSim
from simulators.scanner import G, SerialScanner
from tests.conftest import Process, Upstream, eventually, write_config
from tests.helpers import cli
from gateway import config as config_mod
from gateway.ops import control

GTIN = G[2:]
BADGE = "0010597059"
HIGH = 200.0


def devices(tmp_path, sim: ModbusSim) -> list[dict]:
    plc = {"kind": "modbus", "name": "press1", "host": "127.0.0.1", "port": sim.port,
           "polls": [{"interval": 0.1, "tags": [{"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC",
                                                   "limits": {"high": HIGH}}]}]}
    scanner = {"kind": "scanner_serial", "name": "scanner1", "port": str(tmp_path / "scanner0"), "feedback": "honeywell",
               "partial_timeout": 0.3, "backoff_initial": 0.05, "backoff_max": 0.2}
    return [plc, scanner]


def station(tmp_path) -> dict:
    bom = tmp_path / "bom.csv"
    bom.write_text(f"work_order,code\nWO-2024-0042,{GTIN}\nWO-2024-0043,{GTIN}\n")
    return {"id": "gw-test", "site": "plant1", "area": "assembly", "line": "line1", "stations": [{"name": "st10", "scan": {"bom_file": str(bom)}}]}


async def trace(sock, kind: str, key: str, **opts) -> dict:
    rsp = await control.request(sock, {"cmd": "trace", "kind": kind, "key": key, "opts": opts}, limit=1 << 26)
    assert rsp["ok"], rsp
    return rsp


async def test_trace_of_a_shift_the_gateway_captured(tmp_path, broker):
    sim = SerialScanner(tmp_path / "scanner0")
    sim.plug()
    async with ModbusSim(port=0) as plc, Upstream(broker.port, "shopfloor/#") as up:
        path = write_config(tmp_path, broker.port, devices(tmp_path, plc), gateway=station(tmp_path))
        sock = config_mod.load(path).control_socket
        gw = Process(path, tmp_path / "gateway.log")
        gw.start()
        try:
            await up.wait(lambda rs: any(r.get("tag") == "press_temperature" for r in rs), timeout=30)
            for text in (BADGE, "]C0WO-2024-0042", "LOT:PL-2024-7", f"]C1{G}1727123110LOT-A42", "]E05901234123457"):
                sim.scan(text)
                await sim.next_ack(10)
            await plc.set("press_temperature", HIGH + 15)
            await up.wait(lambda rs: any(r["type"] == "alarm" and r["state"] == "raised" for r in rs))
            await plc.set("press_temperature", HIGH - 20)
            await up.wait(lambda rs: any(r["type"] == "alarm" and r["state"] == "cleared" for r in rs))
            for text in ("]C0WO-2024-0043", f"]C1{G}1727123110LOT-A42", "CMD:END", BADGE):
                sim.scan(text)
                await sim.next_ack(10)
            await up.wait(lambda rs: len(up.of(type="scan")) == 9 and any(r.get("event") == "operator_out" for r in rs))

            # through the daemon: every record of the lot's context reached the broker, so none is buffered
            async def delivered():
                t = (await trace(sock, "lot", "PL-2024-7"))["trace"]
                return t if t and t["completeness"]["buffered"] == 0 else None

            live = await eventually(delivered, timeout=20, what="the sink's cursor past the lot's records")
            (ctx,) = live["contexts"]
            assert (ctx["work_order"], ctx["lot"], ctx["station"]) == ("WO-2024-0042", "PL-2024-7", "st10") and ctx["ended_at"]
            assert [(m["status"], m["reason_code"], m["batch"]) for m in live["materials"]] == [
                ("accepted", "ok", "LOT-A42"), ("rejected", "not_in_bom", None)]
            assert live["materials"][0]["gtin"] == GTIN
            assert [o["operator"] for o in live["operators"]] == [BADGE]
            assert [(a["state"], a["limit"], a["tag"]) for a in live["alarms"]] == [("raised", HIGH, "press_temperature"), ("cleared", HIGH, "press_temperature")]
            c = live["completeness"]
            assert c["readings"] > 10 and c["delivered"] == c["readings"] and (c["dead_lettered"], c["discarded"], c["gaps"]) == (0, 0, [])
            upstream = {r["seq"] for r in up.records if r.get("context_id") == ctx["context_id"]}
            assert len(upstream) == c["readings"]  # what the trace counts is what went upstream

            forward = (await trace(sock, "material", "LOT-A42"))["trace"]["consumed"]
            assert [(x["work_order"], x["status"]) for x in forward] == [("WO-2024-0042", "accepted"), ("WO-2024-0043", "accepted")]
            sessions = (await trace(sock, "operator", BADGE))["trace"]["sessions"]
            assert len(sessions) == 1 and sessions[0]["logout_at"] is not None

            r = await asyncio.to_thread(cli, "trace", "lot", "PL-2024-7", "-c", str(path))
            assert r.returncode == 0, r.stderr
            assert "materials (2)" in r.stdout and "completeness:" in r.stdout and "INCOMPLETE" not in r.stdout
        finally:
            assert gw.terminate() == 0
    sim.unplug()

    # without the daemon: the file opened read-only; the minutes it wrote on the way out are there too
    r = await asyncio.to_thread(cli, "trace", "lot", "PL-2024-7", "-c", str(path), "--json", "--series")
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    (temp,) = t["tags"]
    assert temp["tag"] == "press_temperature" and temp["limits"] == {"low": None, "high": HIGH}
    assert temp["max"] >= HIGH + 15 and temp["out_of_limits"] and sum(p["count"] for p in temp["series"]) == temp["count"] > 0
    assert t["completeness"]["readings"] == live["completeness"]["readings"]
    r = await asyncio.to_thread(cli, "trace", "order", "WO-2024-0099", "-c", str(path))
    assert r.returncode == 1 and "the journal holds" in r.stderr


async def test_a_running_lot_s_trace_holds_the_minute_under_way(tmp_path, broker):
    from tests.conftest import InProcess

    press = {"kind": "synthetic", "name": "press", "rate": 200, "tags": 2}
    async with InProcess(write_config(tmp_path, broker.port, [press])) as gw:
        assert (await gw.request(cmd="context", action="start", work_order="WO-7", lot="LOT-7"))["ok"]
        readings = lambda st: next(d["readings"] for d in st["devices"] if d["device"] == "press")  # noqa: E731
        before = readings(await gw.status())  # all later ones are in LOT-7's context
        st = await gw.wait_status(lambda s: readings(s) >= before + 100)
        rsp = await gw.request(cmd="trace", kind="lot", key="LOT-7", opts={"series": False})
    assert rsp["ok"], rsp
    counted = sum(t["count"] for t in rsp["trace"]["tags"] if t["device"] == "press")
    # minutes are written when they end; the trace commits the one under way first
    assert counted >= readings(st) - before >= 100
