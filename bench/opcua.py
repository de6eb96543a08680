"""OPC UA subscription benchmark: 1,000 monitored items sampled every 100 ms.

    python bench/opcua.py [--items 1000] [--sampling 0.1] [--seconds 60]

The server (`python -m simulators opcua --extra N`) runs in its own process and changes every item
every 100 ms, so the gateway receives up to N x 10 notifications per second. Prints notifications per
second, the backlog of notifications waiting in the driver (sampled each second: it must not grow),
and the gateway's CPU %.
"""

from __future__ import annotations

import argparse
import os
import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.opcua.config import OpcUaConfig  # noqa: E402


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators", "opcua", "--port", "0", "--extra", str(args.items), "--period", str(args.sampling)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline().split()
        url, ns = line[2], int(line[-1])
        nodes = [{"name": f"v{i:04d}", "node": f"ns={ns};s=Bench.v{i:04d}", "sampling": args.sampling, "queue": 1}
                 for i in range(args.items)]
        driver = OpcUaConfig(kind="opcua", name="bench", url=url, timeout=10, nodes=nodes).build()
        t = time.monotonic()
        await driver.connect()
        print(f"opcua: subscribed {args.items} items in {time.monotonic() - t:.1f} s")
        count = 0

        async def consume():
            nonlocal count
            async for _ in driver.readings():
                count += 1

        task = asyncio.create_task(consume())
        await asyncio.sleep(2.0)  # warm up: initial values
        c0, t0, n0, s0 = time.process_time(), time.monotonic(), count, proc_cpu(proc.pid)
        backlog = []
        for _ in range(int(args.seconds)):
            await asyncio.sleep(1.0)
            backlog.append(driver.sub._event_queue.qsize())  # notifications received but not yet turned into readings
        cpu, wall, n = time.process_time() - c0, time.monotonic() - t0, count - n0
        server_cpu = proc_cpu(proc.pid) - s0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.aclose()
        half = max(1, len(backlog) // 2)
        print(f"opcua: {args.items} items at {args.sampling * 1000:.0f} ms sampling for {wall:.0f} s")
        print(f"  notifications/s {n / wall:,.0f} (ideal {args.items / args.sampling:,.0f})")
        # a publish response brings up to one notification per item at once, so a sample taken right after one
        # sees up to `items` queued; growth would show as a max above that and a rising second half
        print(f"  backlog         first half mean {sum(backlog[:half]) / half:.0f}, second half mean "
              f"{sum(backlog[half:]) / max(1, len(backlog) - half):.0f}, max {max(backlog)} "
              f"({'bounded by one publish response' if max(backlog) <= args.items else 'GROWING'})")
        print(f"  gateway CPU     {100 * cpu / wall:.1f} % of one core (server process excluded)")
        print(f"  server CPU      {100 * server_cpu / wall:.1f} % of one core (the simulator; near 100 % means it, not the gateway, limits the rate)")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--sampling", type=float, default=0.1)
    p.add_argument("--seconds", type=float, default=60)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
