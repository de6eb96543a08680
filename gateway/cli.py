"""`shopfloor-gateway` command line: run, check-config, print-schema, status, context, dead-letter.

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
from typing import Any

import orjson

from gateway import config as config_mod
from gateway import control
from gateway.errors import BufferError, ConfigError, GatewayError

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
    p = argparse.ArgumentParser(
        prog="shopfloor-gateway",
        description=__doc__,
        epilog="exit statuses: " + "; ".join(f"{k} {v}" for k, v in EXIT.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds to wait for the running gateway's answer (default {TIMEOUT:g})")
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
    _extend(sub, with_config)

    args = p.parse_args(argv)
    if args.command != "run":
        from gateway import logs

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
    """Subcommands kept in their own modules (and optional parts such as `decode` from gateway.scan)."""
    from gateway import deadletter, watch

    watch.add_parser(sub, COMMANDS)
    deadletter.add_parser(sub, COMMANDS, with_config)
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
    st = asyncio.run(_status(cfg, args.timeout))
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(render_status(st))
    return EX_OK if st.get("running") else EX_UNAVAILABLE


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
            "counters": box.stats.counters,
            "contexts": await box.contexts(),
        }


async def ask(cfg, req: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any] | None:
    """The running daemon's answer; None when no daemon listens on the control socket."""
    sock = cfg.control_socket
    try:
        return await control.request(sock, req, timeout=timeout)
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
        raise Unavailable(f"the gateway's answer on {sock} is larger than the control socket's limit of {control.LIMIT} bytes", EX_PROTOCOL) from None
    except PermissionError:
        raise Unavailable(f"no permission to use the control socket {sock} (be in the gateway's group, or root)") from None


@contextlib.asynccontextmanager
async def opened(cfg):
    """The buffer file opened by this command, with no daemon listening: under its lock, so never
    a buffer that a daemon holds (one that is starting, or stuck before its control socket)."""
    from gateway.outbox import BufferLocked, Outbox

    try:
        box = Outbox(cfg.buffer)
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
    """Ask the running daemon; without one, `handle(outbox, req)` on the file opened here."""
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


def render_status(st: dict[str, Any]) -> str:
    out = [f"gateway {st['gateway_id']}: {'running' if st.get('running') else 'NOT RUNNING'}"]
    if b := st.get("broker"):
        line = f"broker  {b['broker']}: {b['state']} since {_age(b['since'])}" + (f" ({b['reason']})" if b.get("reason") else "")
        if lat := b.get("latency_ms"):
            line += f"; ingest to PUBACK p50 {lat['p50']} ms, p99 {lat['p99']} ms"
        out.append(line)
    buf = st["buffer"]
    age = buf.get("oldest_unsent_age")
    line = f"buffer  {buf['rows']} rows, {buf['bytes']} bytes, oldest unsent {'-' if age is None else f'{age:.1f}s'}"
    if buf.get("dead_letter_rows"):
        line += f"; {buf['dead_letter_rows']} dead letters ({buf['dead_letter_bytes']} bytes): `dead-letter list`"
    out.append(line)
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
    rsp = asyncio.run(_context(cfg, req, args.timeout))
    if not rsp.get("ok"):
        print(f"refused: {rsp.get('error')}", file=sys.stderr)
        return EX_FAIL
    print(json.dumps(rsp.get("context") or rsp.get("contexts"), indent=2))
    return EX_OK


async def _context(cfg, req: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
    async def apply(box, req: dict[str, Any]) -> dict[str, Any]:
        # No daemon listening: apply the change to the buffer file directly (we hold its lock, so
        # a daemon starting meanwhile waits for us rather than racing us).
        from gateway.daemon import Gateway

        gw = Gateway(cfg, box, await box.contexts())
        writer = asyncio.create_task(box.run())
        try:
            return await gw.handle(req)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    return await ask_or_open(cfg, req, timeout, apply)


COMMANDS = {
    "run": cmd_run,
    "check-config": cmd_check,
    "print-schema": cmd_schema,
    "status": cmd_status,
    "context": cmd_context,
}
