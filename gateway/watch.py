"""`shopfloor-gateway watch`: a live view of what arrives at the broker, one line per record."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiomqtt
import orjson


def line(topic: str, rec: dict[str, Any]) -> str:
    kind = rec.get("type")
    where = "/".join(x for x in (rec.get("station"), rec.get("device")) if x)
    head = f"{rec.get('seq', '-'):>5} {where}"
    if kind == "context":
        ops = ",".join(rec.get("operators") or []) or "-"
        return f"{head} context {rec.get('event')}: work order {rec.get('work_order')} op {rec.get('operation')} lot {rec.get('lot')} operators {ops} ({rec.get('source')})"
    where = f"[{rec['work_order']} lot {rec.get('lot')}]" if rec.get("context") == "active" else "[unassigned]"
    value = rec.get("value")
    unit = f" {rec['unit']}" if rec.get("unit") else ""
    q = "" if rec.get("quality") == "good" else f" {rec.get('quality').upper()} ({rec.get('reason')})"
    status = f" {rec['status']}" if rec.get("status") else ""
    return f"{head} {rec.get('tag')}={value}{unit}{q}{status} {where}"


async def watch(host: str, port: int, topic: str, count: int | None = None, out=sys.stdout) -> None:
    seen = 0
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(topic, qos=1)
        async for msg in client.messages:
            try:
                data = orjson.loads(msg.payload)
            except orjson.JSONDecodeError:
                print(f"{msg.topic}: {msg.payload!r}", file=out, flush=True)
                continue
            for rec in data if isinstance(data, list) else [data]:
                if isinstance(rec, dict) and "type" in rec:
                    print(line(str(msg.topic), rec), file=out, flush=True)
                else:
                    print(f"{msg.topic}: {rec}", file=out, flush=True)
                seen += 1
            if count is not None and seen >= count:
                return


def add_parser(sub, commands) -> None:
    p = sub.add_parser("watch", help="print what arrives at the broker (a live view for integrators)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--topic", default="shopfloor/#")
    p.add_argument("--count", type=int, help="stop after this many records")

    def run(args) -> int:
        try:
            asyncio.run(watch(args.host, args.port, args.topic, args.count))
        except aiomqtt.MqttError as exc:
            print(f"error: broker {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 69
        return 0

    commands["watch"] = run
