"""`shopfloor-gateway` command line: run, check-config, print-schema, status, context, dead-letter, trace.

Every failure ends in one line on stderr and an exit status (EXIT below), never a traceback; a
closed stdout (`… | head`) ends the command quietly.
"""

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

import orjson

from gateway import config as config_mod
from gateway.errors import BufferError, ConfigError, GatewayError
from gateway.ops import control

DEFAULT_CONFIG = os.environ.get("SHOPFLOOR_GATEWAY_CONFIG", "/etc/shopfloor-gateway/gateway.yaml")
EX_OK, EX_FAIL, EX_UNAVAILABLE, EX_SOFTWARE, EX_IOERR, EX_PROTOCOL, EX_CONFIG = 0, 1, 69, 70, 74, 76, 78
EX_INTERRUPTED, EX_PIPE = 130, 141
EXIT = {
    EX_OK: "ok",
    EX_FAIL: "refused (the gateway said why)",
    EX_UNAVAILABLE: "gateway or buffer unavailable: not running, running but not answering in time, or buffer in use",
    EX_SOFTWARE: "internal error (a bug: please report the line printed)",
    EX_IOERR: "input/output error",
    EX_PROTOCOL: "the gateway's answer could not be read (too large or not JSON)",
    EX_CONFIG: "configuration error",
    EX_INTERRUPTED: "interrupted (Ctrl-C)",
    EX_PIPE: "standard output closed (e.g. `| head`): nothing more is printed",
}
TIMEOUT = 10.0


class Unavailable(GatewayError):
    """The daemon cannot be used for this request; `status` is the exit status to end with."""

    def __init__(self, message: str, status: int = EX_UNAVAILABLE):
        super().__init__(message)
        self.status = status


def main(argv: list[str] | None = None) -> int:
    from gateway.ops.version import VERSION

    p = argparse.ArgumentParser(
        prog="shopfloor-gateway",
        description=__doc__,
        epilog="exit statuses: " + "; ".join(f"{k} {v}" for k, v in EXIT.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"shopfloor-gateway {VERSION}")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds to wait for the running gateway's answer (default {TIMEOUT:g})")
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
    _extend(sub, with_config)

    args = p.parse_args(argv)
    if args.command != "run":
        from gateway.ops import logs

        logs.setup("info", "auto")  # to stderr: stdout stays clean for JSON output
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed stdout fails here, inside the handlers below
        return status
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    except Unavailable as exc:
        return fail(str(exc), exc.status)
    except BufferError as exc:
        return fail(str(exc), EX_UNAVAILABLE)
    except BrokenPipeError:
        _quiet_stdout()
        return EX_PIPE
    except KeyboardInterrupt:
        return EX_INTERRUPTED
    except OSError as exc:
        return fail(str(exc), EX_IOERR)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line and an exit status, not a traceback
        if args.command == "run":
            import structlog

            structlog.get_logger("gateway").exception("gateway_crashed", error=repr(exc))
        return fail(f"internal error: {type(exc).__name__}: {exc}", EX_SOFTWARE)


def fail(message: str, status: int) -> int:
    try:
        print(f"error: {message}", file=sys.stderr)
    except OSError:
        pass  # stderr is gone too: the status says it
    return status


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's own flush at exit finds nothing to complain about."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _extend(sub: argparse._SubParsersAction, with_config) -> None:
    """Subcommands kept in their own modules (and optional parts such as `decode` from gateway.station.scan)."""
    from gateway.ops import deadletter, trace, watch

    watch.add_parser(sub, COMMANDS)
    deadletter.add_parser(sub, COMMANDS, with_config)
    trace.add_parser(sub, COMMANDS, with_config)
    try:
        from gateway.station.scan.cli import add_parser
    except ImportError:
        return
    add_parser(sub, COMMANDS)


def cmd_run(args) -> int:
    from gateway import daemon
    from gateway.ops import logs

    cfg = config_mod.load(args.config)
    if args.once:
        from gateway.ops import once

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
    from gateway.ops import samples

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
        st = asyncio.run(_status(cfg, args.timeout))
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


async def _status(cfg, timeout: float = TIMEOUT) -> dict[str, Any]:
    rsp = await ask(cfg, {"cmd": "status"}, timeout)
    if rsp is not None:
        return rsp
    async with opened(cfg) as box:
        oldest = await box.oldest()
        return {
            "gateway_id": cfg.gateway.id,
            "running": False,
            "buffer": {
                "rows": box.stats.rows,
                "bytes": box.stats.bytes,
                "oldest_unsent_age": round(time.time() - oldest, 3) if oldest else None,
                "dead_letter_rows": box.stats.dead_rows,
                "dead_letter_bytes": box.stats.dead_bytes,
            },
            "counters": {k: v for k, v in box.stats.counters.items() if k != "sinks"},
            "sinks": {n: {"state": "not running", "cursor": r.cursor, "backlog": r.backlog, "acknowledged": r.acked,
                          "dead_lettered": r.dead_lettered} for n, r in box.readers.items()},
            "contexts": await box.contexts(),
        }


async def ask(cfg, req: dict[str, Any], timeout: float = TIMEOUT, limit: int = control.LIMIT) -> dict[str, Any] | None:
    """The running daemon's answer; None when no daemon listens on the control socket."""
    sock = cfg.control_socket
    try:
        return await control.request(sock, req, timeout=timeout, limit=limit)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except TimeoutError:
        raise Unavailable(
            f"the gateway is running but did not answer on {sock} within {timeout:g} s (busy or stuck); "
            "a change may still be applied: check with `status` or `context show`"
        ) from None
    except ConnectionError as exc:
        raise Unavailable(f"the gateway closed the control connection on {sock} without answering ({exc.strerror or exc})") from None
    except orjson.JSONDecodeError as exc:
        raise Unavailable(f"the gateway's answer on {sock} is not JSON ({exc})", EX_PROTOCOL) from None
    except ValueError:
        # StreamReader.readline past its limit
        raise Unavailable(f"the gateway's answer on {sock} is larger than the limit of {limit} bytes", EX_PROTOCOL) from None
    except PermissionError:
        raise Unavailable(f"no permission to use the control socket {sock} (be in the gateway's group, or root)") from None


@contextlib.asynccontextmanager
async def opened(cfg):
    """The buffer file opened by this command, with no daemon listening: under its lock, so never
    a buffer that a daemon holds (one that is starting, or stuck before its control socket)."""
    from gateway.capture.files import BufferLocked
    from gateway.capture.log import Log

    try:
        box = Log(cfg.buffer, [s.name for s in cfg.northbound], cfg.journal)
        await box.__aenter__()
    except BufferLocked:
        raise Unavailable(
            f"a gateway process holds the buffer {cfg.buffer.path} but does not answer on its control socket "
            f"{cfg.control_socket} (starting, or stuck); try again, or check `systemctl status`"
        ) from None
    try:
        yield box
    finally:
        await box.__aexit__(None, None, None)


async def ask_or_open(cfg, req: dict[str, Any], timeout: float, handle) -> dict[str, Any]:
    """Ask the running daemon; without one, `handle(log, req)` on the file opened here."""
    rsp = await ask(cfg, req, timeout)
    if rsp is not None:
        return rsp
    async with opened(cfg) as box:
        return await handle(box, req)


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
    sinks = st.get("sinks") or {}
    if len(sinks) > 1 or not st.get("broker"):
        for name, k in sinks.items():
            out.append(f"sink    {name}: {k['state']}, {k['backlog']} to send, {k['acknowledged']} acknowledged, {k['dead_lettered']} dead-lettered")
    buf = st["buffer"]
    age = buf.get("oldest_unsent_age")
    line = f"buffer  {buf['rows']} rows, {_bytes(buf['bytes'])}, oldest unsent {'-' if age is None else f'{age:.1f}s'}"
    if "disk_free" in buf:
        line += f"; {_bytes(buf['disk_free'])} free on its disk"
    if buf.get("dead_letter_rows"):
        line += f"; {buf['dead_letter_rows']} dead letters ({_bytes(buf['dead_letter_bytes'])}): `dead-letter list`"
    if buf.get("journal_rows") is not None:
        line += f"; journal {buf['journal_rows']} rows, {_bytes(buf['journal_bytes'])}"
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
    rsp = asyncio.run(_context(cfg, req, args.timeout))
    if not rsp.get("ok"):
        print(f"refused: {rsp.get('error')}", file=sys.stderr)
        return EX_FAIL
    print(json.dumps(rsp.get("context") or rsp.get("contexts"), indent=2))
    return EX_OK


def _invalid(req: dict[str, Any]) -> str | None:
    """Why the arguments cannot make a valid request (in terms of the options), or None."""
    from pydantic import ValidationError

    from gateway.station import commands

    try:
        commands.ControlRequest.model_validate(req)
    except ValidationError as exc:
        e = exc.errors()[0]
        field = str(e["loc"][0]) if e["loc"] else "arguments"
        option = "--operator" if field == "operators" else "--" + field.replace("_", "-")
        return f"{option}: {e['msg'].removeprefix('Value error, ')}"
    return None


async def _context(cfg, req: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
    async def apply(box, req: dict[str, Any]) -> dict[str, Any]:
        # No daemon listening: apply the change to the buffer file directly (we hold its lock, so
        # a daemon starting meanwhile waits for us rather than racing us).
        from gateway.daemon import Gateway

        gw = Gateway(cfg, box, await box.contexts())
        writer = asyncio.create_task(box.run())
        try:
            return await gw.handle(req, control.Peer.local())
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    return await ask_or_open(cfg, req, timeout, apply)


def cmd_reload(args) -> int:
    cfg = config_mod.load(args.config)  # refused here, with file:line: field, before the daemon is asked
    try:
        rsp = asyncio.run(control.request(cfg.control_socket, {"cmd": "reload"}, timeout=max(args.timeout, 30)))
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
