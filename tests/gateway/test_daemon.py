"""Start-up checks of the daemon."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway import config
from gateway.ops.preflight import missing_parts

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_optional_dependency_is_named_with_its_extra(monkeypatch):
    cfg = config.load(ROOT / "config" / "scanners.yaml")
    assert missing_parts(cfg) == []
    for name in [m for m in sys.modules if m == "evdev" or m.startswith("evdev.") or m.startswith("drivers.scanner_evdev.driver")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "evdev", None)  # what an install without the extra looks like to import
    problems = missing_parts(cfg)
    assert problems and all("shopfloor-gateway[scanners]" in p for p in problems)
    assert any("wedge1" in p for p in problems)


def test_an_unusable_buffer_path_is_a_clear_error(tmp_path):
    import subprocess

    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "gateway: {id: gw1, site: s, area: a, line: l, stations: [st1]}\n"
        "mqtt: {host: 127.0.0.1, port: 1}\n"
        "buffer: {path: /proc/nonexistent/buffer.db}\n"
    )
    r = subprocess.run([sys.executable, "-m", "gateway", "run", "-c", str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 69
    assert "buffer.path /proc/nonexistent/buffer.db: cannot use it" in r.stderr and "Traceback" not in r.stderr


# --- stopping: always within a bound, whatever is in flight ---------------------------------------

import asyncio  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from gateway import daemon  # noqa: E402
from gateway.northbound.mqtt import JsonSink  # noqa: E402
from tests.conftest import InProcess, Process, write_config  # noqa: E402
from tests.helpers import Control  # noqa: E402

OVEN = {"kind": "synthetic", "name": "oven", "rate": 200, "tags": 2}


async def test_halt_cancels_again_a_task_that_swallowed_the_cancel():
    waiting, swallowed = asyncio.Event(), asyncio.Event()

    async def stubborn():
        try:
            waiting.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # what asyncio.wait_for can do on Python 3.11 when the cancel races its result
        await asyncio.Event().wait()

    t = asyncio.create_task(stubborn())
    await waiting.wait()
    assert await daemon.halt([t], 5.0) == set()
    assert swallowed.is_set() and t.cancelled()


async def test_a_stop_ends_although_the_publisher_lost_its_cancel(tmp_path, broker, monkeypatch):
    real = JsonSink.run

    async def run(self, feed):
        try:
            await real(self, feed)
        except asyncio.CancelledError:
            pass
        await feed.new.wait()  # the hang seen in the field: waiting for records that never come
        await asyncio.Event().wait()

    monkeypatch.setattr(JsonSink, "run", run)
    gw = InProcess(write_config(tmp_path, broker.port, [OVEN]))
    async with gw:
        await gw.wait_status(lambda st: st["broker"]["state"] == "connected")
    # InProcess asserts the exit status 0 on the way out, within its own bound.


def _frozen_broker_gateway(tmp_path, broker) -> tuple[Process, Control]:
    """A gateway whose broker accepted it and then froze (SIGSTOP): nothing it sends is ever acknowledged."""
    path = write_config(tmp_path, broker.port, [OVEN], mqtt={"keepalive": 60})
    gw = Process(path, tmp_path / "gw.log")
    gw.start()
    return gw, Control(path)


async def _freeze(broker, ctl: Control) -> None:
    async with asyncio.timeout(20):
        while (await ctl.status())["broker"]["state"] != "connected":
            await asyncio.sleep(0.05)
    os.kill(broker.proc.pid, signal.SIGSTOP)
    async with asyncio.timeout(20):  # messages now wait for a PUBACK that never comes
        while (await ctl.status())["broker"]["inflight"] == 0:
            await asyncio.sleep(0.05)


async def test_a_stop_with_a_frozen_broker_ends_within_the_bound(tmp_path, broker):
    gw, ctl = _frozen_broker_gateway(tmp_path, broker)
    try:
        await _freeze(broker, ctl)
        t0 = time.monotonic()
        gw.proc.terminate()
        status = gw.proc.wait(daemon.STOP_SECONDS + 10)
        took = time.monotonic() - t0
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
        if gw.proc.poll() is None:
            gw.kill()
    assert status == 0, f"exit {status} after {took:.1f} s"
    events = [e["event"] for e in gw.events()]
    assert "shutdown_undelivered" in events and events[-1] == "gateway_stopped"


async def test_a_second_sigterm_ends_the_process_at_once(tmp_path, broker):
    gw, ctl = _frozen_broker_gateway(tmp_path, broker)
    try:
        await _freeze(broker, ctl)
        gw.proc.terminate()
        async with asyncio.timeout(10):
            while not any(e.get("event") == "gateway_stopping" for e in gw.events()):
                await asyncio.sleep(0.02)
        gw.proc.terminate()
        status = gw.proc.wait(5)  # well inside the drain the first stop is waiting out
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
        if gw.proc.poll() is None:
            gw.kill()
    assert status == 128 + signal.SIGTERM
    assert any(e.get("event") == "shutdown_forced" for e in gw.events())


async def test_a_stop_while_the_disk_refuses_says_how_many_readings_were_never_captured(tmp_path, broker):
    gw = InProcess(write_config(tmp_path, broker.port, [OVEN]))
    await gw.__aenter__()
    box = gw.gw.log
    await gw.wait_status(lambda st: st["counters"]["captured"] > 0)
    broker.stop()  # rows stay, so the file must grow
    async with box.lock:
        await box.db.execute(f"PRAGMA max_page_count={(await (await box.db.execute('PRAGMA page_count')).fetchone())[0]}")
    await gw.wait_status(lambda st: st["counters"]["write_errors"] > 0 and st["buffer"]["pending_commit"] > 0)
    gw.stop.set()
    async with asyncio.timeout(daemon.STOP_SECONDS + 5):
        status = await gw.task
    assert status == daemon.EX_IOERR
    assert box.pending() > 0  # what the log line counts (shutdown_uncaptured readings=N)


async def test_a_sink_that_fails_to_take_device_news_costs_the_gateway_nothing(tmp_path, broker, monkeypatch):
    def device_state(self, device, state):
        raise ZeroDivisionError("bug in a sink")

    monkeypatch.setattr(JsonSink, "device_state", device_state, raising=False)
    async with InProcess(write_config(tmp_path, broker.port, [OVEN])) as gw:
        first = (await gw.status())["counters"]["captured"]
        # Several rounds of device news have failed by now, and capture and delivery go on.
        await gw.wait_status(lambda st: st["counters"]["captured"] > first + 500 and st["counters"]["published"] > first + 400)
