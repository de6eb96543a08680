"""`shopfloor-gateway watch`: a live view of what arrives at the broker, one line per record.

Each line has the record's time, where it comes from, what it says and its outcome; alarms and context
events are marked as such, the gateway's status topic is printed as the JSON it is. `--json` prints
each record as one JSON line for piping. With `-c FILE` it connects to the broker that file names,
with its TLS settings and login, unless options say otherwise.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import orjson


def _time(rec: dict[str, Any]) -> str:
    ts = rec.get("ts")
    return ts[11:23] if isinstance(ts, str) and len(ts) >= 23 else "--:--:--.---"


def line(topic: str, rec: dict[str, Any]) -> str:
    kind = rec.get("type")
    where = "/".join(x for x in (rec.get("station"), rec.get("device")) if x)
    head = f"{_time(rec)} {rec.get('seq', '-'):>5} {where}"
    if kind == "context":
        ops = ",".join(rec.get("operators") or []) or "-"
        by = rec.get("actor") or rec.get("source")
        return f"{head} CONTEXT {rec.get('event')}: work order {rec.get('work_order')} op {rec.get('operation')} lot {rec.get('lot')} operators {ops} ({by})"
    order = f"[{rec['work_order']} lot {rec.get('lot')}]" if rec.get("context") == "active" else "[unassigned]"
    value = rec.get("value")
    unit = f" {rec['unit']}" if rec.get("unit") else ""
    if kind == "alarm":
        return f"{head} ALARM {rec.get('alarm')} {str(rec.get('state')).upper()} ({rec.get('severity')}): {rec.get('tag')}={value}{unit} limit {rec.get('limit')} {order}"
    q = "" if rec.get("quality") == "good" else f" {str(rec.get('quality')).upper()} ({rec.get('reason')})"
    status = ""
    if rec.get("status"):
        status = f" -> {rec['status']}" + (f" ({rec['reason_code']})" if rec.get("reason_code") else "")
    return f"{head} {rec.get('tag')}={value}{unit}{q}{status} {order}"


async def watch(client_args: dict[str, Any], topic: str, count: int | None = None, as_json: bool = False, out=sys.stdout) -> None:
    seen = 0
    async with aiomqtt.Client(**client_args) as client:
        await client.subscribe(topic, qos=1)
        async for msg in client.messages:
            t = str(msg.topic)
            try:
                data = orjson.loads(msg.payload)
            except orjson.JSONDecodeError:
                print(f"{t}: {bytes(msg.payload)!r}" if not as_json else orjson.dumps({"topic": t, "raw": bytes(msg.payload).decode("utf-8", "replace")}).decode(), file=out, flush=True)
                continue
            for rec in data if isinstance(data, list) else [data]:
                if as_json:
                    print(orjson.dumps({"topic": t, **rec} if isinstance(rec, dict) else {"topic": t, "value": rec}).decode(), file=out, flush=True)
                elif isinstance(rec, dict) and "type" in rec:
                    print(line(t, rec), file=out, flush=True)
                else:  # the gateway's status topic, a reply, anything else: as the JSON it is
                    print(f"{t}: {orjson.dumps(rec).decode()}", file=out, flush=True)
                seen += 1
            if count is not None and seen >= count:
                return


def client_args(args) -> dict[str, Any]:
    """Broker, TLS and login from the options, filled in from the configuration file with -c."""
    m = None
    if args.config:
        from gateway import config as config_mod

        m = config_mod.load(args.config).mqtt
    host = args.host or (m.host if m else "127.0.0.1")
    cafile = args.cafile or (m.tls.ca_file if m and m.tls else None)
    port = args.port or (m.effective_port if m else (8883 if cafile else 1883))
    user = args.user or (m.username if m else None)
    password = None
    if args.password_file:
        password = Path(args.password_file).read_text().splitlines()[0]
    elif m and user == m.username:
        password = m.password()
    tls = None
    if cafile:
        tls = ssl.create_default_context(cafile=str(cafile))
        if m and m.tls and not args.cafile:
            tls.check_hostname = m.tls.check_hostname
            if m.tls.cert_file:
                tls.load_cert_chain(str(m.tls.cert_file), str(m.tls.key_file) if m.tls.key_file else None)
    if args.cert:
        tls = tls or ssl.create_default_context()
        tls.load_cert_chain(args.cert, args.key)
    return {"hostname": host, "port": port, "username": user, "password": password, "tls_context": tls}


def add_parser(sub, commands) -> None:
    p = sub.add_parser("watch", help="print what arrives at the broker (a live view for integrators)")
    p.add_argument("-c", "--config", help="take broker, TLS and login from this gateway configuration")
    p.add_argument("--host", help="broker host (default 127.0.0.1, or the configured one)")
    p.add_argument("--port", type=int, help="broker port (default 1883, 8883 with --cafile, or the configured one)")
    p.add_argument("--cafile", help="CA certificate(s) to verify the broker with (turns TLS on)")
    p.add_argument("--cert", help="client certificate for mutual TLS")
    p.add_argument("--key", help="client private key for mutual TLS")
    p.add_argument("-u", "--user", help="user name for the broker")
    p.add_argument("--password-file", help="file whose first line is the password")
    p.add_argument("--topic", default="shopfloor/#")
    p.add_argument("--json", action="store_true", help="one JSON object per record and line, with its topic")
    p.add_argument("--count", type=int, help="stop after this many records")

    def run(args) -> int:
        try:
            ca = client_args(args)
        except OSError as exc:
            print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
            return 66
        try:
            asyncio.run(watch(ca, args.topic, args.count, args.json))
        except aiomqtt.MqttError as exc:
            print(f"error: broker {ca['hostname']}:{ca['port']}: {exc}", file=sys.stderr)
            return 69
        return 0

    commands["watch"] = run
