"""Modbus polling benchmark: N simulated PLCs x 100 registers polled every 100 ms.

    python bench/modbus.py [--plcs 10] [--registers 100] [--interval 0.1] [--seconds 60]

The PLCs run in a separate process (`python -m simulators modbus --count N`), so the CPU figure is the
gateway side only: drivers, decoding and the per-tag rules. Prints the achieved poll period (p50,
p99, max) per poll of the first tag of every PLC, readings per second and CPU %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.modbus.config import ModbusConfig  # noqa: E402


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run(args) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators", "modbus", "--port", "0", "--count", str(args.plcs)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        ports = [int(proc.stdout.readline().split(":")[2].split(",")[0]) for _ in range(args.plcs)]
        tags = [{"name": f"r{a}", "address": a} for a in range(args.registers)]
        drivers = [
            ModbusConfig(kind="modbus", name=f"plc{i}", host="127.0.0.1", port=p, timeout=1,
                         polls=[{"interval": args.interval, "tags": tags}]).build()
            for i, p in enumerate(ports)
        ]
        for d in drivers:
            await d.connect()
        stamps: list[list[float]] = [[] for _ in drivers]
        count = 0

        async def consume(i, d):
            nonlocal count
            async for r in d.readings():
                count += 1
                if r.tag == "r0":
                    stamps[i].append(time.monotonic())

        tasks = [asyncio.create_task(consume(i, d)) for i, d in enumerate(drivers)]
        await asyncio.sleep(1.0)  # warm up
        c0, t0, n0 = time.process_time(), time.monotonic(), count
        for s in stamps:
            s.clear()
        await asyncio.sleep(args.seconds)
        cpu, wall, n = time.process_time() - c0, time.monotonic() - t0, count - n0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for d in drivers:
            await d.aclose()
        periods = [b - a for s in stamps for a, b in zip(s, s[1:])]
        requests = sum(d.requests for d in drivers)
        print(f"modbus: {args.plcs} PLCs x {args.registers} registers every {args.interval * 1000:.0f} ms for {wall:.0f} s")
        print(f"  poll period   p50 {statistics.median(periods) * 1000:.1f} ms  p99 {pct(periods, 0.99) * 1000:.1f} ms  "
              f"max {max(periods) * 1000:.1f} ms  ({len(periods)} polls)")
        print(f"  readings/s    {n / wall:,.0f}  (requests so far {requests}, {args.registers} registers per request)")
        print(f"  gateway CPU   {100 * cpu / wall:.1f} % of one core (pid {os.getpid()}, simulators excluded)")
    finally:
        proc.terminate()
        proc.wait(5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plcs", type=int, default=10)
    p.add_argument("--registers", type=int, default=100)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--seconds", type=float, default=60)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
