"""A fleet on one broker: N gateway processes, one mosquitto, a deduplicating consumer, a broker restart.

    python bench/fleet.py                       # 10 gateways x 200 readings/s, 40 s, restart at 20 s
    python bench/fleet.py --gateways 4 --rate 500 --seconds 20

Each gateway is its own process with its own id and buffer file. The consumer is what a plant puts
behind its broker: MQTT 5 shared subscription (`$share/fleet/...`) over two clients with persistent
sessions, dropping duplicates on (gateway_id, seq). Halfway the broker is restarted. At the end the
gateways are stopped (SIGTERM: they deliver what they hold, within their bound) and every gateway's
buffer file says how many readings it captured and how many it still holds; lost = captured − held −
distinct records a subscription got, for the shared one and for a plain persistent subscription beside
it (the latter is what the gateways delivered). Prints per-gateway CPU and RSS and the broker's CPU;
asserts nothing.
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

import aiomqtt
import orjson
import psutil
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulators.broker import Broker  # noqa: E402


class Consumer:
    """Two clients sharing one subscription; every distinct (gateway_id, seq) counted once."""

    def __init__(self, port: int, clients: int = 2, share: bool = True, name: str = "fleet-consumer"):
        self.port = port
        self.topic = ("$share/fleet/" if share else "") + "shopfloor/+/+/+/+/+/telemetry"
        self.seen: set[tuple[str, int]] = set()
        self.duplicates = 0
        self.tasks = [asyncio.create_task(self._run(f"{name}-{i}")) for i in range(clients)]

    async def _run(self, ident: str) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=ident, protocol=aiomqtt.ProtocolVersion.V5,
                                          clean_start=False, properties=props) as c:
                    await c.subscribe(self.topic, qos=1)
                    async for msg in c.messages:
                        data = orjson.loads(msg.payload)
                        for rec in data if isinstance(data, list) else [data]:
                            key = (rec["gateway_id"], rec["seq"])
                            if key in self.seen:
                                self.duplicates += 1
                            else:
                                self.seen.add(key)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def gateway_config(tmp: Path, i: int, port: int, rate: float) -> Path:
    folder = tmp / f"gw{i:02d}"
    folder.mkdir()
    doc = {
        "gateway": {"id": f"gw-{i:02d}", "site": "plant1", "area": "assembly", "line": f"line{i:02d}", "stations": ["st10"]},
        "mqtt": {"host": "127.0.0.1", "port": port, "protocol": "5"},
        "buffer": {"path": str(folder / "buffer.db")},
        "log": {"level": "warning", "format": "json"},
        "devices": [{"kind": "synthetic", "name": "press", "rate": rate, "tags": 10}],
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def buffer_counts(path: Path) -> tuple[int, int]:
    """(captured, still held) from a stopped gateway's buffer file."""
    db = sqlite3.connect(path)
    try:
        counters = orjson.loads(db.execute("SELECT value FROM meta WHERE key='state'").fetchone()[0])["counters"]
        cursor = min(c for (c,) in db.execute("SELECT seq FROM cursors"))
        held = db.execute("SELECT coalesce(sum(last - max(seq, ?) + 1), 0) FROM log WHERE last > ?", (cursor + 1, cursor)).fetchone()[0]
    finally:
        db.close()
    return counters["captured"], held


def cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=10)
    ap.add_argument("--rate", type=float, default=200, help="readings per second per gateway")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--outage", type=float, default=2.0, help="seconds the broker is down in the middle")
    ap.add_argument("--no-share", action="store_true", help="one consumer with a plain persistent subscription instead of a shared one")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        tmp = Path(tmp)
        broker = Broker(tmp / "broker")
        broker.start()
        broker_cpu = 0.0
        consumer = Consumer(broker.port, 1 if args.no_share else 2, share=not args.no_share)
        # A plain persistent subscription beside the shared one: it tells what the gateways delivered
        # to the broker from what the shared subscription lost at the broker (mosquitto 2.0 does not
        # keep shared subscriptions across its restart: what arrives before the consumers subscribe
        # again has no subscriber).
        witness = Consumer(broker.port, 1, share=False, name="fleet-witness")
        await asyncio.sleep(1.0)  # the consumers' sessions exist before the first record
        paths = [gateway_config(tmp, i, broker.port, args.rate) for i in range(args.gateways)]
        procs = [subprocess.Popen([sys.executable, "-m", "gateway", "run", "-c", str(p)], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=open(p.with_name("gateway.log"), "wb")) for p in paths]
        ps = [psutil.Process(p.pid) for p in procs]
        rss = [0.0] * len(procs)
        t0 = time.monotonic()
        cpu0 = [0.0] * len(procs)
        try:
            await asyncio.sleep(3.0)  # start-up: imports, buffer, first connection
            cpu0 = [cpu(p) for p in ps]
            bcpu0 = cpu(psutil.Process(broker.proc.pid))
            t0 = time.monotonic()
            restarted = False
            while (elapsed := time.monotonic() - t0) < args.seconds:
                await asyncio.sleep(0.5)
                rss = [max(r, p.memory_info().rss / 2**20) for r, p in zip(rss, ps, strict=True)]
                if not restarted and elapsed >= args.seconds / 2:
                    broker_cpu += cpu(psutil.Process(broker.proc.pid)) - bcpu0
                    print(f"broker restart at {elapsed:.1f} s (down {args.outage:g} s) …", flush=True)
                    broker.stop()
                    await asyncio.sleep(args.outage)
                    broker.start()
                    bcpu0 = cpu(psutil.Process(broker.proc.pid))
                    restarted = True
            wall = time.monotonic() - t0
            cpu1 = [cpu(p) for p in ps]
            broker_cpu += cpu(psutil.Process(broker.proc.pid)) - bcpu0
        finally:
            for p in procs:
                p.terminate()
            codes = [p.wait(30) for p in procs]
        captured = held = 0
        for p in paths:
            c, h = buffer_counts(p.with_name("buffer.db"))
            captured, held = captured + c, held + h
        expected = captured - held
        try:
            async with asyncio.timeout(30):  # what the gateways delivered while stopping is still on its way to us
                while len(consumer.seen) < expected or len(witness.seen) < expected:
                    await asyncio.sleep(0.2)
        except TimeoutError:
            pass  # reported below as lost
        await asyncio.sleep(0.5)
        await consumer.close()
        await witness.close()
        broker.stop()
    got = len(consumer.seen)
    print(f"fleet: {args.gateways} gateways x {args.rate:g} readings/s, {wall:.0f} s measured, broker restarted once (down {args.outage:g} s)")
    print(f"  captured {captured}   still buffered {held}   received distinct {got}   duplicates dropped {consumer.duplicates}")
    print(f"  lost {expected - got}   gateway exit statuses {sorted(set(codes))}")
    print(f"  plain persistent subscription beside it: received {len(witness.seen)}, lost {expected - len(witness.seen)}"
          " (what the gateways delivered to the broker)")
    per = [100 * (b - a) / wall for a, b in zip(cpu0, cpu1, strict=True)]
    print(f"  per gateway      CPU {min(per):.1f}–{max(per):.1f} % of one core (mean {sum(per) / len(per):.1f} %), "
          f"{1e6 * sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) / max(1, args.gateways * args.rate * wall):.0f} us per reading; "
          f"RSS {min(rss):.0f}–{max(rss):.0f} MB")
    print(f"  broker           CPU {100 * broker_cpu / wall:.1f} % of one core")


if __name__ == "__main__":
    asyncio.run(main())
