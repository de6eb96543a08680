"""What the libraries cost on this machine before any gateway code: the floor under bench/modbus.py.

    python bench/floor.py [--tags 20] [--devices 10] [--n 2000]

Three measurements, each in this process with its CPU time (user + system, every thread):
1. pymodbus: `read_holding_registers` of `--tags` registers against the Modbus simulator (its own
   process), one request after another, nothing done with the answer.
2. paho through aiomqtt: a QoS 1 message of `--tags` JSON records, as the JSON sink sends one poll,
   published and its PUBACK awaited, `--devices` at a time (one per device topic), to a private
   mosquitto. MQTT 5, like the gateway's default.
3. SQLite: one transaction of `--devices` rows like the capture log's (a poll of each device), in WAL
   with synchronous=FULL, the COMMIT in aiosqlite's thread as the log does it.

It prints each per operation and per data point, and their sum per data point for a poll of `--tags`
registers per device every interval: one request, one message and 1/`--devices` of a commit per poll.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt
import aiosqlite

from harness import simulator, stop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.northbound.mqtt import PahoHooks  # noqa: E402
from tests.conftest import Broker  # noqa: E402

RECORD = (b'{"seq":1764640000000001,"tag":"r1","value":12,"unit":null,"quality":"good","reason":null,"ts":"2026-12-02T01:53:24.123Z",'
          b'"gateway_id":"gw-bench","schema":1,"type":"telemetry","ingested_at":"2026-12-02T01:53:24.125Z","site":"plant1",'
          b'"area":"assembly","line":"line1","station":"st10","device":"plc1","device_kind":"modbus","context":"unassigned",'
          b'"context_id":null,"context_version":0,"work_order":null,"operation":null,"lot":null,"operators":[]}')


async def modbus(tags: int, n: int) -> float:
    from pymodbus.client import AsyncModbusTcpClient

    sim, line = simulator(["modbus", "--port", "0", "--period", "0.1"])
    try:
        port = int(line.rsplit(":", 1)[1].split(",")[0])
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0, reconnect_delay=0)
        await client.connect()
        for _ in range(100):  # warm-up
            await client.read_holding_registers(0, count=tags, device_id=1)
        t0 = time.process_time()
        for _ in range(n):
            await client.read_holding_registers(0, count=tags, device_id=1)
        used = (time.process_time() - t0) / n
        client.close()
        return used
    finally:
        stop(sim)


async def mqtt(tags: int, devices: int, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker")
        broker.start()
        try:
            body = b"[" + b",".join([RECORD] * tags) + b"]"
            async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5, identifier="floor") as client:
                hooks = PahoHooks(client)
                hooks.connected()
                topics = [f"shopfloor/plant1/assembly/line1/st10/plc{d}/telemetry" for d in range(devices)]
                for _ in range(10):
                    await asyncio.gather(*(hooks.publish(t, body) for t in topics))
                t0 = time.process_time()
                for _ in range(n // devices):
                    await asyncio.gather(*(hooks.publish(t, body) for t in topics))
                return (time.process_time() - t0) / (n // devices * devices)
        finally:
            broker.stop()


async def sqlite(tags: int, devices: int, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = await aiosqlite.connect(Path(tmp) / "floor.db", check_same_thread=False)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("CREATE TABLE log(seq INTEGER PRIMARY KEY, last INTEGER, device TEXT, head BLOB, items BLOB)")
            await db.commit()
            items = b"\n".join([RECORD[RECORD.index(b'"tag"') - 1 : RECORD.index(b',"gateway_id"')] + b"}"] * tags)
            head = b"{" + RECORD[RECORD.index(b'"gateway_id"') :]
            seq, commits = 0, n // devices
            t0 = time.process_time()
            for _ in range(commits):
                rows = []
                for d in range(devices):
                    rows.append((seq, seq + tags - 1, f"plc{d}", head, items))
                    seq += tags
                db._conn.executemany("INSERT INTO log VALUES (?,?,?,?,?)", rows)  # on the loop, as the log does
                await db.commit()  # in aiosqlite's thread
            return (time.process_time() - t0) / commits
        finally:
            await db.close()


async def main_async(args: argparse.Namespace) -> None:
    t, d = args.tags, args.devices
    req = await modbus(t, args.n)
    msg = await mqtt(t, d, args.n)
    commit = await sqlite(t, d, args.n)
    print(f"library floor on this machine ({t} registers per poll, {d} devices polled together)")
    print(f"  pymodbus request of {t} registers   {req * 1e6:7.0f} us CPU   = {req / t * 1e6:5.1f} us per data point")
    print(f"  MQTT 5 QoS 1 message of {t} records {msg * 1e6:7.0f} us CPU   = {msg / t * 1e6:5.1f} us per data point")
    print(f"  SQLite commit of {d} rows (fsync)   {commit * 1e6:7.0f} us CPU   = {commit / (t * d) * 1e6:5.1f} us per data point")
    total = req / t + msg / t + commit / (t * d)
    print(f"  sum: {total * 1e6:.1f} us per data point before any gateway code (one request, one message, 1/{d} commit per poll)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tags", type=int, default=20, help="registers per request, records per message")
    p.add_argument("--devices", type=int, default=10, help="devices polled together: messages at once, rows per commit")
    p.add_argument("--n", type=int, default=2000, help="requests and messages measured")
    args = p.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
