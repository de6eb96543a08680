"""Sparkplug B sink benchmark: CPU per data point at the rate of 10 Modbus PLCs x 20 registers / 100 ms.

    python bench/sparkplug.py [--seconds 20] [--devices 10] [--tags 20] [--interval 0.1] [--pack 100]
    python bench/sparkplug.py --pipeline [--seconds 20] …     # the real gateway, Modbus simulator, with and without the sink

The sink runs in this process against a private mosquitto, fed the chunks the capture log hands a
sink for that load (one chunk per device and poll, records as the pipeline stamps them), on time;
a subscriber in a child process takes every message. Printed: data points/s
offered and sent, the cursor's lag, and this process's CPU per data point (µs), which is the sink's
cost: encoding, protobuf, publishing, fences (and the paced feed's JSON, a small share).

`--pipeline`: the real gateway process polls the Modbus simulator (devices x tags uint16 registers
every interval) twice, once with the JSON sink alone and once with the JSON and the Sparkplug
sinks (primary host none); the difference of the gateway's CPU per reading is the Sparkplug sink's.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway.northbound.sink import Chunk  # noqa: E402
from gateway.northbound.sparkplug.config import SparkplugConfig  # noqa: E402
from gateway.northbound.sparkplug.sink import SparkplugSink  # noqa: E402
from simulators.broker import Broker  # noqa: E402

WARMUP = 3.0
SUBSCRIBER = """
import sys, paho.mqtt.client as m
c = m.Client(m.CallbackAPIVersion.VERSION2)
c.on_connect = lambda c, *a: c.subscribe("spBv1.0/#", 0)
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_forever()
"""


class PacedFeed:
    """Chunks as the log would commit them for `devices` PLCs polled every `interval` s."""

    name = "sparkplug"

    def __init__(self, devices: int, tags: int, interval: float):
        self.devices, self.tags, self.interval = devices, tags, interval
        self.chunks: list[Chunk] = []
        self.seq = 0
        self.acked = 0
        self.read = 0  # chunks handed out
        self.new = asyncio.Event()
        self.state: dict[str, str] = {}

    async def produce(self) -> None:
        n = 0
        t0 = time.monotonic()
        while True:
            now = time.time()
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
            for d in range(self.devices):
                head = orjson.dumps({"gateway_id": "gw-bench", "schema": 1, "type": "telemetry", "ingested_at": ts, "site": "plant1", "area": "a", "line": "l1",
                                     "station": "st10", "device": f"plc{d}", "device_kind": "modbus", "unit": None, "quality": "good", "reason": None,
                                     "context": "active", "context_id": "c1", "context_version": 3, "work_order": "WO-1", "operation": "OP10", "lot": "L1", "operators": ["op7"]})
                items = b"\n".join(orjson.dumps({"tag": f"r{a}", "value": (n + a) % 65536, "ts": ts}) for a in range(self.tags))
                self.chunks.append(Chunk(self.seq + 1, self.seq + self.tags, "telemetry", "st10", f"plc{d}", now, head, items))
                self.seq += self.tags
            self.new.set()
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * self.interval - time.monotonic()))

    async def next(self, limit: int) -> list[Chunk]:
        while self.read >= len(self.chunks):
            self.new.clear()
            await self.new.wait()
        out, self.read = self.chunks[self.read :], len(self.chunks)
        return out

    def ack(self, first: int, last: int) -> None:
        self.acked += last - first + 1

    def dead(self, first: int, last: int, reason: str) -> None:
        raise AssertionError(f"dead-lettered {first}..{last}: {reason}")

    def rewind(self) -> None:
        raise AssertionError("the connection dropped during the benchmark")

    def recall(self, key: str) -> str | None:
        return self.state.get(key)

    def remember(self, key: str, value: str) -> None:
        self.state[key] = value

    async def sync(self) -> None:
        return None

    @property
    def backlog(self) -> int:
        return self.seq - self.acked


async def bench(args: argparse.Namespace) -> None:
    rate = args.devices * args.tags / args.interval
    with tempfile.TemporaryDirectory(prefix="bench-spb-") as tmp:
        broker = Broker(Path(tmp) / "broker")
        broker.start()
        sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(broker.port)])
        try:
            feed = PacedFeed(args.devices, args.tags, args.interval)
            sink = SparkplugSink(SparkplugConfig(host="127.0.0.1", port=broker.port, group_id="plant1", max_pack=args.pack), "gw-bench", {"st10": "station-st10"})
            tasks = [asyncio.create_task(sink.run(feed)), asyncio.create_task(feed.produce())]
            await asyncio.sleep(WARMUP)
            c0, p0, a0, t0 = time.process_time(), sink.counts["points"], feed.acked, time.monotonic()
            await asyncio.sleep(args.seconds)
            c1, p1, a1, t1 = time.process_time(), sink.counts["points"], feed.acked, time.monotonic()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            sub.terminate()
            broker.stop()
    points, wall, cpu = p1 - p0, t1 - t0, c1 - c0
    print(f"sparkplug sink: {args.devices} PLCs x {args.tags} registers every {args.interval} s = {rate:,.0f} data points/s offered, max_pack {args.pack}")
    print(f"  sent {points / wall:,.0f} data points/s in DDATA, acknowledged {(a1 - a0) / wall:,.0f}/s, backlog at the end {feed.backlog} (state {sink.state})")
    print(f"  CPU {100 * cpu / wall:.1f} % of one core = {1e6 * cpu / max(points, 1):.1f} µs per data point")


async def pipelined(args: argparse.Namespace) -> None:
    from harness import pipeline, simulator, stop
    from modbus import devices

    sim, line = simulator(["modbus", "--port", "0", "--period", "0.1"])
    try:
        port = int(line.rsplit(":", 1)[1].split(",")[0])
        devs = devices(port, args.devices, args.tags, args.interval)
        print(f"modbus: {args.devices} PLCs x {args.tags} registers every {args.interval} s = {args.devices * args.tags / args.interval:,.0f} readings/s offered")
        json_only = await pipeline(devs, args.seconds)
        json_only.report("gateway with the JSON sink")
        both = await pipeline(devs, args.seconds, sinks=[{"kind": "sparkplug", "group_id": "plant1", "max_pack": args.pack}])
        both.report("gateway with the JSON and the Sparkplug sinks")
    finally:
        stop(sim)
    per = [r.cpu_percent / 100 * r.seconds / max(r.readings, 1) for r in (json_only, both)]
    print(f"Sparkplug sink: {1e6 * (per[1] - per[0]):.1f} µs of CPU per data point (gateway {1e6 * per[0]:.1f} -> {1e6 * per[1]:.1f} µs per reading)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="measured window in seconds (after a 3 s warm-up)")
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--tags", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--pack", type=int, default=100, help="max_pack: values per DDATA message")
    p.add_argument("--pipeline", action="store_true", help="the real gateway and Modbus simulator, with and without the sink")
    args = p.parse_args()
    asyncio.run(pipelined(args) if args.pipeline else bench(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
