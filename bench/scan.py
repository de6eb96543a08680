"""Scan benchmark: classification/decoding throughput on one core, and scan → feedback and
scan → committed-row latency through the real gateway (serial scanner on a pty, SQLite capture log,
private mosquitto when one is installed).

    python bench/scan.py [--seconds 3] [--scans 500]

Prints figures; asserts nothing. Runs in well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.model import SCAN, Reading  # noqa: E402
from gateway.station.context import Change, Context, apply  # noqa: E402
from gateway.station.scan.config import ScanSettings  # noqa: E402
from gateway.station.scan.decode import Decoder  # noqa: E402
from gateway.station.scan.rules import ScanRules  # noqa: E402

G = "0109501101020917"


def corpus(n: int, unique: bool) -> list[str]:
    """A shift's mix: mostly material labels (GS1-128/DataMatrix), some EPCs, travelers, badges, junk.
    `unique`: every label has its own serial number, so nothing repeats (no cache help)."""
    out = []
    for i in range(n):
        s = i if unique else i % 50
        k = i % 10
        if k < 5:
            out.append(f"]d2{G}10LOT-{s % 97:03d}\x1d1727123121SN{s:08d}")
        elif k < 7:
            out.append(f"]C1{G}1727123110LOT-{s:06d}")
        elif k == 7:
            out.append(f"{(0x30 << 88 | 3 << 85 | 5 << 82 | 614141 << 58 | 812345 << 38 | s):024X}")
        elif k == 8:
            out.append(f"]C0WO-2024-{s % 10000:04d}")
        else:
            out.append(f"{s % 10**10:010d}")
    return out


def throughput(seconds: float) -> None:
    settings = ScanSettings()
    for label, unique in (("distinct labels (no cache hits)", True), ("shift mix (labels repeat, cache hits)", False)):
        dec = Decoder(settings)
        scans = corpus(200_000 if not unique else 60_000, unique)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds and n < len(scans):
            for s in scans[n : n + 1000]:
                dec.fields(s)
            n += 1000
        dt = time.perf_counter() - t0
        print(f"decode   {label:50} {n / dt:10,.0f} scans/s")
    rules = ScanRules(settings)
    ctx, _ = apply(Context("st"), Change("start", "scan", work_order="WO-1"))
    readings = [Reading("scan", s, time.time(), type=SCAN) for s in corpus(60_000, True)]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds and n < len(readings):
        for r in readings[n : n + 1000]:
            rules.evaluate(r, ctx, r.ts)
        n += 1000
    dt = time.perf_counter() - t0
    print(f"evaluate {'distinct labels, decode + station rules':50} {n / dt:10,.0f} scans/s")


async def latency(count: int) -> None:
    from simulators.scanner import SerialScanner
    from tests.conftest import Broker, InProcess, write_config

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = Broker(tmp / "broker")
        have_broker = any(os.access(Path(p) / "mosquitto", os.X_OK) for p in (*os.environ.get("PATH", "").split(":"), "/usr/sbin"))
        if have_broker:
            broker.start()
        sim = SerialScanner(tmp / "scanner0")
        sim.plug()
        dev = {"kind": "scanner_serial", "name": "scanner1", "port": str(tmp / "scanner0"), "feedback": "honeywell"}
        path = write_config(tmp, broker.port, [dev])
        committed: list[float] = []
        try:
            async with InProcess(path) as gw:
                box = gw.gw.log
                orig = box.committed

                async def timed(ticket):
                    await orig(ticket)
                    committed.append(time.perf_counter())

                box.committed = timed
                # Opening a serial port flushes its input: scan only once the gateway has it open.
                while (await gw.status())["devices"][0]["state"] != "connected":
                    await asyncio.sleep(0.02)
                sim.scan("]C0WO-2024-0042")
                await sim.next_ack(10)
                committed.clear()
                sent, acked = [], []
                for i in range(count):
                    t0 = time.perf_counter()
                    sim.scan(f"]d2{G}10LOT-{i % 7}\x1d1727123121SN{i:08d}")
                    await sim.next_ack(10)
                    sent.append(t0)
                    acked.append(time.perf_counter())
        finally:
            sim.unplug()
            broker.stop()
    ms = lambda xs: sorted(1000 * x for x in xs)  # noqa: E731
    fb = ms(a - s for s, a in zip(sent, acked))
    cm = ms(c - s for s, c in zip(sent, committed))
    for name, xs in (("scan -> committed row", cm), ("scan -> feedback at the scanner", fb)):
        p50, p99 = statistics.median(xs), xs[int(0.99 * (len(xs) - 1))]
        print(f"latency  {name:50} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {xs[-1]:6.2f} ms  (n={len(xs)})")
    print(f"         (serial scanner on a pty, SQLite capture log with synchronous=full, {'mosquitto running' if have_broker else 'no broker'})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per throughput figure")
    p.add_argument("--scans", type=int, default=500, help="scans for the latency figures")
    args = p.parse_args()
    throughput(args.seconds)
    asyncio.run(latency(args.scans))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
