"""Capture-pipeline benchmark: the synthetic driver through the real capture log and a real mosquitto at QoS 1.

    python bench/pipeline.py                  # all phases, about 2 minutes
    python bench/pipeline.py --quick          # shorter phases and a 200,000-row backlog

The gateway runs as its own process (so its CPU and memory are its own); figures come from its
status (control socket) and from psutil. A subscriber counts what reaches the broker's consumers.
Prints figures; asserts nothing. Targets: >= 40,000 readings/s sustained with no backlog
growth; p99 reading->PUBACK <= 20 ms at 1,000/s, the same while the journal prunes; publishing
resumes within 1 s of the broker's return; a 1,000,000-row backlog drains at >= 100,000 rows/s while
capture goes on. The CPU per reading at 2,000/s is printed for comparison: with one device ticking
every 10 ms each tick is its own commit (buffer.commit_quiet), the price of the latency figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.northbound.mqtt import LATENCY_ROWS  # noqa: E402
from gateway.ops import control  # noqa: E402
from gateway.model import Reading  # noqa: E402
from simulators.broker import Broker  # noqa: E402


class Consumer:
    """A plain paho subscriber on its own thread, counting records that arrive."""

    def __init__(self, port: int):
        self.records = 0
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-consumer", clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("shopfloor/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        self.records += msg.payload.count(b'{"seq":')

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Gateway:
    def __init__(self, folder: Path, broker_port: int, rate: float, max_pack: int = 100, journal: dict | None = None):
        self.folder = folder
        self.cfg_path = folder / "gateway.yaml"
        self.socket = folder / "control.sock"
        doc = {
            "gateway": {"id": "bench", "site": "s", "area": "a", "line": "l", "stations": ["st1"]},
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "max_pack": max_pack, "max_inflight": 64},
            "buffer": {"path": str(folder / "buffer.db")},
            "log": {"format": "json"},
            "journal": journal or {},
            "devices": [{"kind": "synthetic", "name": "load", "rate": rate, "tags": 50}] if rate else [],
        }
        self.cfg_path.write_text(yaml.safe_dump(doc))
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.peak_rss = 0

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        log = open(self.folder / "gateway.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "-c", str(self.cfg_path)], cwd=ROOT, stdout=log, stderr=log)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"gateway did not start; see {self.folder / 'gateway.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(60)
            self.proc = None

    def status(self) -> dict:
        st = asyncio.run(control.request(self.socket, {"cmd": "status"}))
        self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
        return st

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system


def sample(gw: Gateway, seconds: float) -> tuple[dict, dict, float, float]:
    """Run for `seconds`; return first and last status, elapsed wall time and CPU seconds."""
    s0, c0, t0 = gw.status(), gw.cpu(), time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        time.sleep(min(0.5, end - time.monotonic()))
        gw.status()
    s1, c1, t1 = gw.status(), gw.cpu(), time.monotonic()
    return s0, s1, t1 - t0, c1 - c0


def phase_rate(tmp: Path, broker: Broker, rate: float, seconds: float, warmup: float = 2.0) -> dict:
    folder = Path(tempfile.mkdtemp(dir=tmp))
    gw = Gateway(folder, broker.port, rate)
    gw.start()
    try:
        time.sleep(warmup)
        s0, s1, wall, cpu = sample(gw, seconds)
    finally:
        gw.stop()
    read = s1["counters"]["read"] - s0["counters"]["read"]
    published = s1["counters"]["published"] - s0["counters"]["published"]
    return {
        "rate": rate,
        "read_per_s": read / wall,
        "published_per_s": published / wall,
        "backlog_start": s0["buffer"]["rows"],
        "backlog_end": s1["buffer"]["rows"],
        "cpu_pct": 100 * cpu / wall,
        "cpu_us_per_reading": 1e6 * cpu / max(read, 1),
        "latency": s1["broker"].get("latency_ms"),
        "rss_mb": gw.peak_rss / 2**20,
    }


def prefill(db_path: Path, rows: int, poll: int = 50) -> None:
    """Write a backlog exactly as the gateway would have: through the real pipeline and capture log,
    in polls of `poll` readings (one row each), with no sink connected."""
    from gateway import config
    from gateway.capture.log import Log
    from gateway.capture.pipeline import Pipeline

    gw = Gateway(db_path.parent, 1, 1)  # its configuration, with the `load` device
    cfg = config.load(gw.cfg_path)

    async def fill() -> None:
        async with Log(cfg.buffer, [s.name for s in cfg.northbound], cfg.journal) as box:
            p = Pipeline(cfg, box)
            origin = p.origins["load"]
            for i in range(0, rows, poll):
                now = time.time()
                p.submit_many(origin, [Reading(f"tag{j}", 50.0 + (i + j) % 100, now) for j in range(min(poll, rows - i))])
                if i % 20_000 < poll:
                    await box.flush()

    asyncio.run(fill())


def phase_drain(tmp: Path, broker: Broker, rows: int, rate: float) -> dict:
    folder = Path(tempfile.mkdtemp(dir=tmp))
    prefill(folder / "buffer.db", rows)
    gw = Gateway(folder, broker.port, rate)
    gw.start()
    c0 = gw.cpu()
    t0 = time.monotonic()
    s0 = gw.status()
    try:
        while True:
            st = gw.status()
            if st["buffer"]["rows"] < rate:  # drained down to what one second of capture adds
                break
            if time.monotonic() - t0 > 600:
                raise RuntimeError("backlog did not drain in 10 minutes")
            time.sleep(0.2)
        wall = time.monotonic() - t0
        cpu = gw.cpu() - c0
    finally:
        gw.stop()
    published = st["counters"]["published"] - s0["counters"]["published"]
    return {"rows": rows, "seconds": wall, "rows_per_s": published / wall, "new_read": st["counters"]["read"], "cpu_pct": 100 * cpu / wall, "rss_mb": gw.peak_rss / 2**20}


def settled(rate: float) -> float:
    """Warm-up after which the sink's latency window (its last LATENCY_ROWS rows) holds only rows
    captured after the start-up: the latency phases measure the running gateway, not its connect."""
    return LATENCY_ROWS / rate + 1.0


def phase_pruning(tmp: Path, broker: Broker, rows: int, rate: float, seconds: float) -> dict:
    """Latency at `rate` while the journal prunes: `rows` of delivered telemetry over a 1 MiB budget."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    prefill(folder / "buffer.db", rows, poll=5)  # many small rows: pruning has work for the whole window
    with sqlite3.connect(folder / "buffer.db") as db:  # as if every sink had it: journal, not backlog
        db.execute("UPDATE cursors SET seq = (SELECT max(last) FROM log)")
    gw = Gateway(folder, broker.port, rate, journal={"telemetry_bytes": 1 << 20})
    gw.start()
    try:
        time.sleep(settled(rate))
        s0, s1, wall, cpu = sample(gw, seconds)
    finally:
        gw.stop()
    pruned = s1["counters"]["journal_pruned"] - s0["counters"]["journal_pruned"]
    return {"latency": s1["broker"].get("latency_ms"), "pruned_per_s": pruned / wall, "cpu_pct": 100 * cpu / wall}


def phase_resume(tmp: Path, broker: Broker, rate: float, outage: float) -> dict:
    folder = Path(tempfile.mkdtemp(dir=tmp))
    gw = Gateway(folder, broker.port, rate)
    gw.start()
    try:
        time.sleep(1.5)
        broker.stop()
        time.sleep(outage)
        backlog = gw.status()["buffer"]["rows"]
        before = gw.status()["counters"]["published"]
        broker.start()
        t0 = time.monotonic()
        while gw.status()["counters"]["published"] == before:
            time.sleep(0.005)
        resumed = time.monotonic() - t0
        while gw.status()["buffer"]["rows"] > rate:
            time.sleep(0.05)
        caught_up = time.monotonic() - t0
    finally:
        gw.stop()
    return {"outage_s": outage, "backlog": backlog, "first_puback_after_s": resumed, "caught_up_after_s": caught_up}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short phases, 200,000-row backlog")
    ap.add_argument("--seconds", type=float, default=None, help="length of each rate phase")
    ap.add_argument("--backlog", type=int, default=None, help="rows in the drain phase")
    ap.add_argument("--rates", default="10000,20000,30000,40000,50000", help="rates tried for the sustained figure")
    args = ap.parse_args()
    seconds = args.seconds or (5 if args.quick else 10)
    backlog = args.backlog or (200_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        broker = Broker(tmp / "broker")
        broker.start()
        consumer = Consumer(broker.port)
        try:
            print(f"pipeline benchmark: synthetic driver -> capture log (SQLite, synchronous=full) -> mosquitto QoS 1, {psutil.cpu_count()} cores")
            r = phase_rate(tmp, broker, 1000, seconds, settled(1000))
            lat = r["latency"] or {}
            print(f"latency at 1,000 readings/s: ingest->PUBACK p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, max {lat.get('max')} ms; CPU {r['cpu_pct']:.1f} %")
            r = phase_rate(tmp, broker, 2000, seconds)
            print(f"CPU at 2,000 readings/s: {r['cpu_us_per_reading']:.1f} us per reading ({r['cpu_pct']:.1f} % of one core); peak RSS {r['rss_mb']:.1f} MB")
            best = None
            for rate in (float(x) for x in args.rates.split(",")):
                r = phase_rate(tmp, broker, rate, seconds)
                grew = r["backlog_end"] - r["backlog_start"]
                ok = grew < rate * 0.5 and r["published_per_s"] >= 0.95 * r["read_per_s"]
                print(
                    f"offered {rate:>8,.0f}/s: captured {r['read_per_s']:>8,.0f}/s, acknowledged {r['published_per_s']:>8,.0f}/s, "
                    f"backlog {r['backlog_start']} -> {r['backlog_end']}, CPU {r['cpu_pct']:.0f} %, {r['cpu_us_per_reading']:.1f} us/reading, "
                    f"RSS {r['rss_mb']:.1f} MB {'ok' if ok else 'BACKLOG GROWS'}"
                )
                if ok:
                    best = r
            if best:
                print(f"sustained end to end with no backlog growth: {best['published_per_s']:,.0f} readings/s")
            r = phase_resume(tmp, broker, 1000, 3.0)
            print(
                f"broker outage of {r['outage_s']:.0f} s with capture at 1,000/s ({r['backlog']} rows buffered): first PUBACK "
                f"{r['first_puback_after_s'] * 1000:.0f} ms after the broker was back, caught up after {r['caught_up_after_s']:.2f} s"
            )
            r = phase_drain(tmp, broker, backlog, 1000)
            print(
                f"backlog of {backlog:,} rows with capture going on at 1,000/s: drained in {r['seconds']:.1f} s = "
                f"{r['rows_per_s']:,.0f} rows/s; CPU {r['cpu_pct']:.0f} %, peak RSS {r['rss_mb']:.1f} MB"
            )
            r = phase_pruning(tmp, broker, backlog, 1000, seconds)
            lat = r["latency"] or {}
            print(
                f"latency at 1,000 readings/s while the journal prunes {r['pruned_per_s']:,.0f} records/s: ingest->PUBACK "
                f"p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, max {lat.get('max')} ms; CPU {r['cpu_pct']:.1f} %"
            )
            time.sleep(1)
            print(f"consumer received {consumer.records:,} records in all")
        finally:
            consumer.close()
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
