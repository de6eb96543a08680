"""`shopfloor-gateway` command line: run, check-config, print-schema, status, context."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from gateway import config as config_mod
from gateway import control
from gateway.errors import BufferError, ConfigError

DEFAULT_CONFIG = os.environ.get("SHOPFLOOR_GATEWAY_CONFIG", "/etc/shopfloor-gateway/gateway.yaml")
EX_OK, EX_FAIL, EX_UNAVAILABLE, EX_CONFIG = 0, 1, 69, 78


def main(argv: list[str] | None = None) -> int:
    from gateway.version import VERSION

    p = argparse.ArgumentParser(prog="shopfloor-gateway", description=__doc__)
    p.add_argument("--version", action="version", version=f"shopfloor-gateway {VERSION}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG}, or $SHOPFLOOR_GATEWAY_CONFIG)")

    rp = sub.add_parser("run", help="run the gateway daemon")
    with_config(rp)
    rp.add_argument(
        "--once", action="store_true",
        help="connect every device, read each poll group once, print the records that would be published, and exit "
        "(no broker, the buffer untouched)",
    )
    rp.add_argument("--wait", type=float, default=5.0, help="with --once: longest wait for a device's first readings, seconds")
    with_config(sub.add_parser("reload", help="validate the file, then make the running gateway apply it (like SIGHUP)"))
    cc = sub.add_parser("check-config", help="validate a configuration file; exit 78 on errors")
    cc.add_argument("file", nargs="?", help="the file (or -c FILE, or $SHOPFLOOR_GATEWAY_CONFIG)")
    with_config(cc)
    cs = sub.add_parser("config", help="help with configuration files")
    csub = cs.add_subparsers(dest="what", required=True)
    csub.add_parser("kinds", help="list the device kinds")
    sp = csub.add_parser("sample", help="print a commented example device entry of a kind")
    sp.add_argument("kind")
    sub.add_parser("print-schema", help="print the JSON Schema of the configuration (for editors)")
    st = sub.add_parser("status", help="devices, buffer, counters and broker state of the gateway")
    with_config(st)
    st.add_argument("--json", action="store_true", help="print JSON")
    st.add_argument("--watch", type=float, metavar="N", help="refresh every N seconds until Ctrl-C")

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
    if args.once:
        from gateway import once

        logs.setup("warning", cfg.log.format)
        return asyncio.run(once.run(cfg, args.wait))
    logs.setup(cfg.log.level, cfg.log.format)
    return asyncio.run(daemon.run(cfg, source=Path(args.config)))


def cmd_check(args) -> int:
    path = args.file or args.config
    cfg = config_mod.load(path)
    print(f"{path}: ok ({len(cfg.devices)} devices, {len(cfg.gateway.stations)} stations)")
    return EX_OK


def cmd_config(args) -> int:
    from gateway import samples

    kinds = samples.kinds()
    if args.what == "kinds":
        for kind, cls in kinds.items():
            print(f"{kind:<16} {(cls.__doc__ or '').strip().splitlines()[0]}")
        return EX_OK
    if args.kind not in kinds:
        print(f"error: unknown kind {args.kind!r}; the kinds are: {', '.join(kinds)}", file=sys.stderr)
        return EX_FAIL
    print(samples.sample(args.kind), end="")
    return EX_OK


def cmd_schema(args) -> int:
    print(json.dumps(config_mod.schema(), indent=2))
    return EX_OK


def cmd_status(args) -> int:
    cfg = config_mod.load(args.config)
    while True:
        st = asyncio.run(_status(cfg))
        if args.watch:
            print("\x1b[H\x1b[2J", end="")  # like watch(1): the screen redrawn in place
        if args.json:
            print(json.dumps(st, indent=2))
        else:
            print(render_status(st))
        if not args.watch:
            return EX_OK if st.get("running") else EX_UNAVAILABLE
        sys.stdout.flush()
        time.sleep(args.watch)


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


def cut(value: Any, width: int = 80) -> str:
    """A value for one line of a terminal: long ones are cut, never printed whole."""
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_status(st: dict[str, Any]) -> str:
    head = f"gateway {st['gateway_id']}: {'running' if st.get('running') else 'NOT RUNNING'}"
    if st.get("running"):
        head += f", version {st.get('version')}, up {_duration(st.get('uptime') or 0)}"
    out = [head]
    if b := st.get("broker"):
        line = f"broker  {b['broker']}: {b['state']} since {_age(b['since'])}" + (f" ({cut(b['reason'])})" if b.get("reason") else "")
        if lat := b.get("latency_ms"):
            line += f"; ingest to PUBACK p50 {lat['p50']} ms, p99 {lat['p99']} ms"
        out.append(line)
        for w in b.get("warnings") or []:
            out.append(f"warning {cut(w, 120)}")
    buf = st["buffer"]
    age = buf.get("oldest_unsent_age")
    line = f"buffer  {buf['rows']} rows, {_bytes(buf['bytes'])}, oldest unsent {'-' if age is None else f'{age:.1f}s'}"
    if "disk_free" in buf:
        line += f"; {_bytes(buf['disk_free'])} free on its disk"
    out.append(line)
    out.append("counters " + ", ".join(f"{k}={v}" for k, v in st["counters"].items()))
    if cmds := st.get("commands"):
        line = f"commands {'on' if cmds.get('enabled') else 'off'}{', signed' if cmds.get('signed') else ''}: {cmds.get('accepted', 0)} accepted, {cmds.get('rejected', 0)} refused"
        if cmds.get("reasons"):
            line += " (" + ", ".join(f"{k} {v}" for k, v in cmds["reasons"].items()) + ")"
        out.append(line)
    if (b or {}).get("last_dead_letter"):
        d = b["last_dead_letter"]
        out.append(f"dead letter {_age(d['at'])}: {cut(d['reason'], 100)}")
    for d in st.get("devices", []):
        line = f"device  {d['device']:<16} {d['kind']:<14} {d['state']:<10} last reading {_age(d['last_reading'])}, {d['readings']} read, {d['bad']} bad"
        if d.get("rate") is not None:
            line += f", {d['rate']:g}/s"
        if d.get("poll_period"):
            line += ", poll " + " ".join(f"{g} {p * 1000:.0f} ms" for g, p in d["poll_period"].items())
        if d.get("reason"):
            line += f" ({cut(d['reason'])})"
        if d.get("retry_in") is not None:
            line += f", retry in {d['retry_in']:.1f} s"
        out.append(line)
        if d.get("error") and d["state"] != "crashed":
            out.append(f"        last error {_age(d['error']['at'])}: {cut(d['error']['message'], 100)}")
        if d.get("counters"):
            out.append("        " + ", ".join(f"{k}={v}" for k, v in d["counters"].items()))
    for a in st.get("alarms") or []:
        out.append(f"alarm   {a['device']}/{a['tag']} {a['alarm']} ({a.get('severity')}): value {cut(a.get('value'), 20)}, limit {a.get('limit')}, since {_age(a['since'])}")
    for station, c in (st.get("contexts") or {}).items():
        if c.get("state") == "active":
            out.append(
                f"station {station}: work order {cut(c['work_order'], 40)} op {cut(c.get('operation'), 20)} lot {cut(c.get('lot'), 40)} "
                f"operators {cut(','.join(c.get('operators') or []) or '-', 60)} (v{c['version']}, {c['source']})"
            )
        else:
            out.append(f"station {station}: idle (readings are unassigned)")
    return "\n".join(out)


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    return f"{d}d {h}h" if d else f"{h}h {m}m" if h else f"{m}m {s}s"


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


def cmd_reload(args) -> int:
    config_mod.load(args.config)  # refused here, with file:line: field, before the daemon is asked
    try:
        rsp = asyncio.run(control.request(config_mod.load(args.config).control_socket, {"cmd": "reload"}, timeout=30))
    except OSError as exc:
        print(f"error: no gateway answers on its control socket ({exc.strerror or exc}); is it running?", file=sys.stderr)
        return EX_UNAVAILABLE
    if not rsp.get("ok"):
        print(f"refused: {rsp.get('error')}", file=sys.stderr)
        for problem in rsp.get("problems", []):
            print(f"  {problem}", file=sys.stderr)
        return EX_CONFIG if rsp.get("problems") else EX_FAIL
    for key in ("started", "restarted", "stopped", "unchanged"):
        print(f"{key:<10} {', '.join(rsp[key]) or '-'}")
    return EX_OK


COMMANDS = {
    "run": cmd_run,
    "reload": cmd_reload,
    "check-config": cmd_check,
    "config": cmd_config,
    "print-schema": cmd_schema,
    "status": cmd_status,
    "context": cmd_context,
}
