"""`shopfloor-gateway` command line: run, check-config, print-schema, status, context."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

from gateway import config as config_mod
from gateway import control
from gateway.errors import BufferError, ConfigError

DEFAULT_CONFIG = os.environ.get("SHOPFLOOR_GATEWAY_CONFIG", "/etc/shopfloor-gateway/gateway.yaml")
EX_OK, EX_FAIL, EX_UNAVAILABLE, EX_CONFIG = 0, 1, 69, 78


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="shopfloor-gateway", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG}, or $SHOPFLOOR_GATEWAY_CONFIG)")

    with_config(sub.add_parser("run", help="run the gateway daemon"))
    cc = sub.add_parser("check-config", help="validate a configuration file; exit 78 on errors")
    cc.add_argument("file")
    sub.add_parser("print-schema", help="print the JSON Schema of the configuration (for editors)")
    st = sub.add_parser("status", help="devices, buffer, counters and broker state of the gateway")
    with_config(st)
    st.add_argument("--json", action="store_true", help="print JSON")

    ctx = sub.add_parser("context", help="show or change a station's work order context")
    csub = ctx.add_subparsers(dest="action", required=True)
    for name, text in (
        ("set", "start a work order (a changeover when another one is active) or update the active one"),
        ("clear", "end the active work order"),
        ("show", "print the contexts"),
        ("login", "add operators"),
        ("logout", "remove operators"),
    ):
        sp = csub.add_parser(name, help=text)
        with_config(sp)
        sp.add_argument("--station", help="station (default: the first configured one)")
        if name == "set":
            sp.add_argument("--work-order", required=True)
            sp.add_argument("--operation")
            sp.add_argument("--lot")
        if name in ("set", "login", "logout"):
            sp.add_argument("--operator", action="append", dest="operators", help="operator id (repeatable)")
        if name in ("set", "clear"):
            sp.add_argument("--reason", help="why (journaled with the change)")
    _extend(sub)

    args = p.parse_args(argv)
    if args.command != "run":
        from gateway import logs

        logs.setup("info", "auto")  # to stderr: stdout stays clean for JSON output
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    except BufferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


def _extend(sub: argparse._SubParsersAction) -> None:
    """Subcommands kept in their own modules (and optional parts such as `decode` from gateway.scan)."""
    from gateway import watch

    watch.add_parser(sub, COMMANDS)
    try:
        from gateway.scan.cli import add_parser
    except ImportError:
        return
    add_parser(sub, COMMANDS)


def cmd_run(args) -> int:
    from gateway import daemon, logs

    cfg = config_mod.load(args.config)
    logs.setup(cfg.log.level, cfg.log.format)
    return asyncio.run(daemon.run(cfg))


def cmd_check(args) -> int:
    cfg = config_mod.load(args.file)
    print(f"{args.file}: ok ({len(cfg.devices)} devices, {len(cfg.gateway.stations)} stations)")
    return EX_OK


def cmd_schema(args) -> int:
    print(json.dumps(config_mod.schema(), indent=2))
    return EX_OK


def cmd_status(args) -> int:
    cfg = config_mod.load(args.config)
    st = asyncio.run(_status(cfg))
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(render_status(st))
    return EX_OK if st.get("running") else EX_UNAVAILABLE


async def _status(cfg) -> dict[str, Any]:
    try:
        return await control.request(cfg.control_socket, {"cmd": "status"})
    except OSError:
        pass
    from gateway.outbox import Outbox

    async with Outbox(cfg.buffer) as box:
        oldest = await box.oldest()
        return {
            "gateway_id": cfg.gateway.id,
            "running": False,
            "buffer": {"rows": box.stats.rows, "bytes": box.stats.bytes, "oldest_unsent_age": round(time.time() - oldest, 3) if oldest else None},
            "counters": box.stats.counters,
            "contexts": await box.contexts(),
        }


def _age(ts: float | None) -> str:
    if not ts:
        return "never"
    s = time.time() - ts
    return f"{s:.1f}s ago" if s < 120 else f"{s / 60:.0f}m ago"


def render_status(st: dict[str, Any]) -> str:
    out = [f"gateway {st['gateway_id']}: {'running' if st.get('running') else 'NOT RUNNING'}"]
    if b := st.get("broker"):
        line = f"broker  {b['broker']}: {b['state']} since {_age(b['since'])}" + (f" ({b['reason']})" if b.get("reason") else "")
        if lat := b.get("latency_ms"):
            line += f"; ingest to PUBACK p50 {lat['p50']} ms, p99 {lat['p99']} ms"
        out.append(line)
    buf = st["buffer"]
    age = buf.get("oldest_unsent_age")
    out.append(f"buffer  {buf['rows']} rows, {buf['bytes']} bytes, oldest unsent {'-' if age is None else f'{age:.1f}s'}")
    out.append("counters " + ", ".join(f"{k}={v}" for k, v in st["counters"].items()))
    for d in st.get("devices", []):
        line = f"device  {d['device']:<16} {d['kind']:<14} {d['state']:<10} last reading {_age(d['last_reading'])}, {d['readings']} read, {d['bad']} bad"
        if d.get("reason"):
            line += f" ({d['reason']})"
        out.append(line)
    for station, c in (st.get("contexts") or {}).items():
        if c.get("state") == "active":
            out.append(f"station {station}: work order {c['work_order']} op {c.get('operation')} lot {c.get('lot')} operators {','.join(c.get('operators') or []) or '-'} (v{c['version']}, {c['source']})")
        else:
            out.append(f"station {station}: idle (readings are unassigned)")
    return "\n".join(out)


def cmd_context(args) -> int:
    cfg = config_mod.load(args.config)
    if args.action == "show":
        req = {"cmd": "contexts"}
    else:
        req = {"cmd": "context", "action": args.action, "station": args.station}
        for key in ("work_order", "operation", "lot", "operators", "reason"):
            if getattr(args, key, None) is not None:
                req[key] = getattr(args, key)
        if (problem := _invalid(req)) is not None:
            print(f"refused: {problem}", file=sys.stderr)
            return EX_FAIL
    rsp = asyncio.run(_context(cfg, req))
    if not rsp.get("ok"):
        print(f"refused: {rsp.get('error')}", file=sys.stderr)
        return EX_FAIL
    print(json.dumps(rsp.get("context") or rsp.get("contexts"), indent=2))
    return EX_OK


def _invalid(req: dict[str, Any]) -> str | None:
    """Why the arguments cannot make a valid request (in terms of the options), or None."""
    from pydantic import ValidationError

    from gateway import commands

    try:
        commands.ControlRequest.model_validate(req)
    except ValidationError as exc:
        e = exc.errors()[0]
        field = str(e["loc"][0]) if e["loc"] else "arguments"
        option = "--operator" if field == "operators" else "--" + field.replace("_", "-")
        return f"{option}: {e['msg'].removeprefix('Value error, ')}"
    return None


async def _context(cfg, req: dict[str, Any]) -> dict[str, Any]:
    try:
        return await control.request(cfg.control_socket, req)
    except OSError:
        pass
    # No daemon listening: apply the change to the buffer file directly (we take its lock, so a
    # daemon starting meanwhile waits for us rather than racing us).
    from gateway.daemon import Gateway
    from gateway.outbox import Outbox

    async with Outbox(cfg.buffer) as box:
        gw = Gateway(cfg, box, await box.contexts())
        writer = asyncio.create_task(box.run())
        try:
            return await gw.handle(req, control.Peer.local())
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer


COMMANDS = {
    "run": cmd_run,
    "check-config": cmd_check,
    "print-schema": cmd_schema,
    "status": cmd_status,
    "context": cmd_context,
}
