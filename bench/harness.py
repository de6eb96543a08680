"""Shared parts of the PLC benchmarks (bench/modbus.py, bench/opcua.py).

- `simulator(argv)`: a simulator as its own process (`python -m simulators …`), so its CPU is not
  counted as the gateway's; returns the process and the line it prints when ready.
- `pipeline(...)`: the real gateway (`python -m gateway run`) as its own process with its capture log on a
  real SQLite file and its publisher connected to a private mosquitto on a free loopback port. While
  it runs, `status` is asked once a second through the control socket; the figures are the readings
  per second, the backlog (rows not yet acknowledged by the broker) at the start, middle and
  end of the measured window, and the gateway process's CPU (percent of one core).
- `driver_alone(...)`: the driver in this process, readings consumed and counted, nothing else.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.driver import each  # noqa: E402
from gateway.ops import control  # noqa: E402
from tests.conftest import Broker  # noqa: E402

WARMUP = 3.0  # seconds before the measured window: connect, subscribe, first polls


def simulator(argv: list[str]) -> tuple[subprocess.Popen, str]:
    """Start `python -m simulators ARGV…`; return it and its first line of output (where it listens)."""
    proc = subprocess.Popen([sys.executable, "-m", "simulators", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()  # printed once it serves; empty if it died
    if not line:
        stop(proc)
        raise RuntimeError(f"simulator {argv} did not start")
    return proc, line.strip()


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Sample:
    t: float  # seconds since the measured window began
    rows: int  # records awaiting PUBACK (the backlog)
    pending: int  # rows queued for the next group commit
    read: int
    published: int
    oldest_age: float | None
    commits: int = 0
    messages: int = 0


@dataclass
class Result:
    seconds: float
    readings: int
    published: int
    cpu_percent: float
    rss_mb: float
    samples: list[Sample] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    broker_state: str = ""
    discarded: int = 0

    def report(self, title: str) -> None:
        s = self.samples
        start, mid, end = s[0], s[len(s) // 2], s[-1]
        print(f"{title}")
        print(f"  window           {self.seconds:6.1f} s after {WARMUP:.0f} s warm-up; devices {self.states}; broker {self.broker_state}")
        print(f"  readings         {self.readings:8d}  = {self.readings / self.seconds:9,.0f} /s captured")
        print(f"  acknowledged     {self.published:8d}  = {self.published / self.seconds:9,.0f} /s records acknowledged by the broker (PUBACK)")
        print(f"  backlog          start {start.rows + start.pending:6d}   middle {mid.rows + mid.pending:6d}   end {end.rows + end.pending:6d}"
              f"   max {max(x.rows + x.pending for x in s):6d} rows   (oldest unsent at end: {_age(end.oldest_age)})")
        per = self.cpu_percent / 100 * self.seconds / max(self.readings, 1) * 1e6
        print(f"  commits          {(end.commits - start.commits) / self.seconds:6.1f} /s   MQTT messages {(end.messages - start.messages) / self.seconds:6.1f} /s")
        print(f"  gateway process  CPU {self.cpu_percent:5.1f} % of one core = {per:.1f} us per data point   RSS {self.rss_mb:5.1f} MB   discarded {self.discarded}")


def _age(a: float | None) -> str:
    return "none" if a is None else f"{a * 1000:.0f} ms"


async def _status(sock: Path) -> dict[str, Any]:
    return await control.request(sock, {"cmd": "status"})


async def _wait_status(sock: Path, proc: subprocess.Popen, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode}")
        try:
            return await _status(sock)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def pipeline(devices: list[dict[str, Any]], seconds: float, mqtt: dict[str, Any] | None = None, sinks: list[dict[str, Any]] = ()) -> Result:
    """Run the real gateway on `devices` for `seconds` (after a warm-up) and measure it; `sinks`:
    further northbound sinks on the same broker, after the JSON one."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmp = Path(tmp)
        broker = Broker(tmp / "broker")
        broker.start()
        cfg = {
            "gateway": {"id": "gw-bench", "site": "plant1", "area": "assembly", "line": "line1", "stations": ["st10"]},
            "northbound": [{"kind": "mqtt", "host": "127.0.0.1", "port": broker.port, **(mqtt or {})},
                           *({"host": "127.0.0.1", "port": broker.port, **s} for s in sinks)],
            "buffer": {"path": str(tmp / "buffer.db")},
            "log": {"level": "info", "format": "json"},
            "devices": devices,
        }
        path = tmp / "gateway.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        sock = tmp / "control.sock"
        log = open(tmp / "gateway.log", "wb")
        # BENCH_PROFILE=<file>: run the gateway under cProfile (slower; for where the time goes, not for figures).
        prof = os.environ.get("BENCH_PROFILE")
        argv = ["bench/profiled.py", prof] if prof else ["-m", "gateway"]
        gw = subprocess.Popen([sys.executable, *argv, "run", "-c", str(path)], cwd=ROOT, stdout=log, stderr=log)
        try:
            ps = psutil.Process(gw.pid)
            await _wait_status(sock, gw)
            await asyncio.sleep(WARMUP)
            samples: list[Sample] = []
            cpu0 = ps.cpu_times()
            t0 = time.monotonic()
            first = await _status(sock)
            samples.append(_sample(first, 0.0))
            while (elapsed := time.monotonic() - t0) < seconds:
                await asyncio.sleep(min(1.0, seconds - elapsed))
                samples.append(_sample(await _status(sock), time.monotonic() - t0))
            cpu1 = ps.cpu_times()
            wall = time.monotonic() - t0
            last = await _status(sock)
            rss = ps.memory_info().rss / 2**20
        finally:
            gw.terminate()
            try:
                gw.wait(30)
            except subprocess.TimeoutExpired:
                gw.kill()
            log.close()
            broker.stop()
        cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        if gw.returncode != 0:
            print((tmp / "gateway.log").read_text()[-2000:], file=sys.stderr)
    return Result(
        seconds=wall,
        readings=samples[-1].read - samples[0].read,
        published=samples[-1].published - samples[0].published,
        cpu_percent=100 * cpu / wall,
        rss_mb=rss,
        samples=samples,
        states={d["device"]: d["state"] for d in last["devices"]},
        broker_state=last["broker"]["state"],
        discarded=last["counters"]["discarded"],
    )


def _sample(st: dict[str, Any], t: float) -> Sample:
    b, c = st["buffer"], st["counters"]
    return Sample(t, b["rows"], b["pending_commit"], c["read"], c["published"], b["oldest_unsent_age"], b.get("commits", 0),
                  (st.get("broker") or {}).get("messages", 0))


async def driver_alone(drivers: list[Any], seconds: float) -> None:
    """Consume every driver's readings in this process; print readings/s and this process's CPU."""
    counts = [0] * len(drivers)
    bad = [0] * len(drivers)
    first: list[str | None] = [None] * len(drivers)
    stamps: list[list[float]] = [[] for _ in drivers]  # arrival of each driver's first tag: the poll period
    measuring = asyncio.Event()

    async def consume(i: int, d: Any) -> None:
        await d.connect()
        try:
            async for got in d.readings():
                for r in each(got):
                    if first[i] is None:
                        first[i] = r.tag
                    if measuring.is_set():
                        counts[i] += 1
                        bad[i] += r.quality != "good"
                        if r.tag == first[i]:
                            stamps[i].append(time.monotonic())
        finally:
            await d.aclose()

    tasks = [asyncio.create_task(consume(i, d)) for i, d in enumerate(drivers)]
    try:
        await asyncio.sleep(WARMUP)
        for t in tasks:
            if t.done():
                t.result()
        me = psutil.Process(os.getpid())
        cpu0, t0 = me.cpu_times(), time.monotonic()
        measuring.set()
        await asyncio.sleep(seconds)
        measuring.clear()
        cpu1, wall = me.cpu_times(), time.monotonic() - t0
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    n = sum(counts)
    cpu = 100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall
    print("driver alone (readings consumed in this process; no capture log, no broker)")
    print(f"  window           {wall:6.1f} s after {WARMUP:.0f} s warm-up; {len(drivers)} driver(s)")
    print(f"  readings         {n:8d}  = {n / wall:9,.0f} /s   (bad {sum(bad)})")
    print(f"  this process     CPU {cpu:5.1f} % of one core")
    periods = sorted(b - a for st in stamps for a, b in zip(st, st[1:]))
    if periods:
        p = lambda q: periods[min(len(periods) - 1, int(q * len(periods)))] * 1000  # noqa: E731
        print(f"  achieved period  p50 {p(0.5):.1f} ms  p99 {p(0.99):.1f} ms  max {periods[-1] * 1000:.1f} ms  ({len(periods)} periods of each driver's first tag)")
