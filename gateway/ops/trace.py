"""`shopfloor-gateway trace lot|material|order|operator`: the journal's trace queries on the command line.

With a running gateway the query goes through its control socket (the daemon reads its own file in a
worker process, so capture never waits for it); without one the file is opened read-only here. Exit 0: found;
1: nothing found (the message gives the time range the journal holds); 2: invalid arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import io
import math
import multiprocessing
import sqlite3
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.journal import schema, trace
from gateway.station import ids

EX_NOTHING, EX_USAGE = 1, 2
TIME_KEYS = frozenset({"at", "started_at", "ended_at", "login_at", "logout_at", "from", "to", "t", "since", "until"})
REPLY_LIMIT = 256 * 1024 * 1024  # a trace of a long order is large; the control socket's usual limit is for small answers
GTIN_LENGTHS = (8, 12, 13, 14)


class Invalid(ValueError):
    """Arguments that cannot make a query (said in terms of the options)."""


class NotJournal(Exception):
    """The file is missing or is not a capture log of this format."""


def add_parser(sub: argparse._SubParsersAction, commands: dict, with_config) -> None:
    tp = sub.add_parser("trace", help="trace a lot, an order, a material batch or an operator through the journal",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = tp.add_subparsers(dest="kind", required=True)
    specs = (
        ("lot", "what went into a lot: contexts, operators, materials, tags, alarms, environment, completeness"),
        ("order", "the same over every context of a work order"),
        ("material", "where a material batch went (forward)"),
        ("operator", "an operator's sessions and the contexts worked on"),
    )
    for kind, text in specs:
        sp = tsub.add_parser(kind, help=text)
        with_config(sp)
        sp.add_argument("--journal", type=Path, help="read this journal file directly (no gateway asked, no configuration read)")
        out = sp.add_mutually_exclusive_group()
        out.add_argument("--json", action="store_true", help="print JSON (times as ISO-8601 UTC)")
        out.add_argument("--csv", action="store_true", help="print CSV, one table per section")
        if kind == "material":
            sp.add_argument("--batch", required=True, help="batch/lot of the material (GS1 AI 10)")
            sp.add_argument("--gtin", help="only this GTIN (8 to 14 digits)")
        else:
            sp.add_argument("key", metavar={"lot": "LOT", "order": "WORK_ORDER", "operator": "OPERATOR"}[kind])
        if kind in ("lot", "order"):
            sp.add_argument("--series", action="store_true",
                            help="with --json: each tag's minutes over the window too (min, max, mean, count per minute)")
        if kind == "operator":
            sp.add_argument("--from", dest="since", help="from (ISO date/time, local unless it says; or unix seconds)")
            sp.add_argument("--to", dest="until", help="to (as --from; `now` is accepted)")
    commands["trace"] = cmd_trace


# -- arguments ----------------------------------------------------------------------------------


def request_of(args) -> dict[str, Any]:
    """The control request for the arguments; Invalid when they cannot make one."""
    kind = args.kind
    opts: dict[str, Any] = {}
    if kind == "material":
        key = _identifier("--batch", args.batch)
        if args.gtin is not None:
            if not (args.gtin.isascii() and args.gtin.isdigit() and len(args.gtin) in GTIN_LENGTHS):
                raise Invalid(f"--gtin: {_shown(args.gtin)} is not a GTIN (8, 12, 13 or 14 digits)")
            opts["gtin"] = args.gtin
    else:
        key = _identifier({"lot": "LOT", "order": "WORK_ORDER", "operator": "OPERATOR"}[kind], args.key)
    if kind == "operator":
        opts["since"] = parse_time("--from", args.since)
        opts["until"] = parse_time("--to", args.until)
        if opts["since"] is not None and opts["until"] is not None and opts["until"] < opts["since"]:
            raise Invalid("--to is before --from")
    if kind in ("lot", "order"):
        if args.series and not args.json:
            raise Invalid("--series goes with --json (the table and the CSV show each tag's summary)")
        if not args.series:
            opts["series"] = False  # each tag's summary; its minutes (thousands of points for a lot) when asked
    return {"cmd": "trace", "kind": kind, "key": key, "opts": {k: v for k, v in opts.items() if v is not None}}


def _identifier(name: str, value: str) -> str:
    why = ids.problem(value)
    if why is not None:
        raise Invalid(f"{name} {why}")
    return value


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def parse_time(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    if text == "now":
        return time.time()
    try:
        t = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(t) and 0 <= t < 32503680000:
            return t
        raise Invalid(f"{name}: {_shown(text)} is out of range")
    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
        t = (d if d.tzinfo else d.astimezone()).timestamp()
    except ValueError:
        raise Invalid(f"{name}: {_shown(text)} is neither an ISO date/time (2026-11-02T06:00) nor unix seconds") from None
    except (OverflowError, OSError):
        raise Invalid(f"{name}: {_shown(text)} is out of range") from None
    if not 0 <= t < 32503680000:  # 1970 to 3000, as the journal's times
        raise Invalid(f"{name}: {_shown(text)} is out of range")
    return t


def check_request(req: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """What a control request asks, checked (the socket's clients are not trusted to have used this CLI)."""
    kind, key, opts = req.get("kind"), req.get("key"), req.get("opts") or {}
    if kind not in trace.KINDS:
        raise Invalid(f"kind must be one of {', '.join(trace.KINDS)}")
    if (why := ids.problem(key)) is not None:
        raise Invalid(f"key {why}")
    if not isinstance(opts, dict) or not set(opts) <= {"gtin", "since", "until", "series"}:
        raise Invalid("opts may hold gtin, since, until and series")
    if not isinstance(opts.get("series", True), bool):
        raise Invalid("series must be true or false")
    gtin = opts.get("gtin")
    if gtin is not None and not (isinstance(gtin, str) and gtin.isascii() and gtin.isdigit() and len(gtin) in GTIN_LENGTHS):
        raise Invalid("gtin must be 8, 12, 13 or 14 digits")
    for k in ("since", "until"):
        v = opts.get(k)
        if v is not None and not (isinstance(v, int | float) and not isinstance(v, bool) and -1e12 < v < 1e12):
            raise Invalid(f"{k} must be unix seconds")
    return kind, key, opts


# -- running the query --------------------------------------------------------------------------


def open_ro(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise NotJournal(f"no journal at {path} (has the gateway run with this configuration?)")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != schema.FORMAT:
            raise NotJournal(f"{path} is not a journal of this gateway: file format {version}, the capture log writes format {schema.FORMAT}")
    except BaseException:
        conn.close()
        raise
    return conn


def run(path: Path, kind: str, key: str, opts: dict[str, Any], limits: dict | None = None,
        conn: sqlite3.Connection | None = None) -> dict[str, Any]:
    """The answer of the control request, computed on the file: {"ok", "trace", "journal"}. Given
    `conn` (the worker's, open on `path`), the trace is only to be encoded: its series may be orjson fragments."""
    own = conn is None
    conn = open_ro(path) if own else conn
    try:
        if kind not in ("lot", "order"):
            opts = {k: v for k, v in opts.items() if k != "series"}
        else:
            opts = {**opts, "series_json": not own, **({"limits": limits} if limits else {})}
        found = trace.query(conn, kind, key, **opts)
        span = found["journal"] if found else trace.Journal(conn).span()
    finally:
        if own:
            conn.close()
    return {"ok": True, "trace": found, "journal": span}


class Reader:
    """The worker's read-only connection, kept between queries while it is open on the same file of
    this format: its parsed schema and cached pages outlive a query (a new connection costs each
    query milliseconds, more under capture)."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._file: tuple[Path, int, int] | None = None

    def conn(self, path: Path) -> sqlite3.Connection:
        # the open connection holds its file, so a file made anew at the path has another inode
        try:
            st = path.stat()
        except OSError:
            st = None
        file = (path, st.st_dev, st.st_ino) if st is not None else None
        if self._conn is not None and (file != self._file or self._conn.execute("PRAGMA user_version").fetchone()[0] != schema.FORMAT):
            self.close()
        if self._conn is None:
            self._conn, self._file = open_ro(path), file
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._file = None


READER = Reader()  # in the worker process


def encoded(path: Path, kind: str, key: str, opts: dict[str, Any], limits: dict | None) -> tuple[bytes | None, dict | None, str, str]:
    """`run` in the worker process: (trace as JSON, journal span, error code, error); the trace
    travels back encoded, so the daemon forwards it without building it again."""
    try:
        rsp = run(path, kind, key, opts, limits, READER.conn(path))
    except NotJournal as exc:
        return None, None, "no_journal", str(exc)
    except sqlite3.Error as exc:
        READER.close()  # the next query opens the file again
        return None, None, "journal_error", f"reading the journal {path}: {exc}"
    return orjson.dumps(rsp["trace"]), rsp["journal"], "", ""


class Worker:
    """One process for trace queries, started at the first: a query's Python work never holds the
    daemon's interpreter, so capture and the scanners' beeps do not wait for a trace."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, *args: Any) -> tuple[bytes | None, dict | None, str, str]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, encoded, *args)
        except BrokenProcessPool:
            self._pool = None  # the next query starts a new one
            return None, None, "worker_died", "the trace worker process died (out of memory?); try again"


WORKER = Worker()


async def handle(path: Path, req: dict[str, Any], limits: dict | None = None) -> dict[str, Any]:
    """The daemon's `trace` request: checked, then run in the worker process on a read-only connection."""
    try:
        kind, key, opts = check_request(req)
    except Invalid as exc:
        return {"ok": False, "error": str(exc), "code": "invalid"}
    found, span, code, error = await WORKER.run(path, kind, key, opts, limits)
    if code:
        return {"ok": False, "error": error, "code": code}
    return {"ok": True, "trace": orjson.Fragment(found), "journal": span}


_LIMITS: list = [None, None]  # the configuration last asked about, and its limits


def config_limits(cfg) -> dict[tuple[str, str], dict[str, Any]]:
    """(device, tag) -> configured limits, wherever a driver's configuration keeps them: found once
    per configuration (a reload makes a new one), not at each trace request in the daemon's loop
    (a walk of every device's configuration). Not to be changed by the caller."""
    if _LIMITS[0] is cfg:
        return _LIMITS[1]
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def walk(obj: Any, device: str, name: str | None) -> None:
        if isinstance(obj, dict):
            lim = obj.get("limits")
            tag = obj.get("name") if isinstance(obj.get("name"), str) else name
            if isinstance(lim, dict) and tag:
                out[(device, tag)] = lim
            for k, v in obj.items():
                walk(v, device, k if isinstance(v, dict) else tag)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, device, None)

    for d in cfg.devices:
        walk(d.model_dump(), d.name, None)
    _LIMITS[:] = [cfg, out]
    return out


def cmd_trace(args) -> int:
    from gateway import config as config_mod
    from gateway.ops import cli

    try:
        req = request_of(args)
    except Invalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        if args.journal is not None:
            rsp = run(args.journal, req["kind"], req["key"], req["opts"])
        else:
            cfg = config_mod.load(args.config)
            rsp = asyncio.run(ask(cfg, req, args.timeout))
            if rsp is None:
                rsp = run(cfg.buffer.path, req["kind"], req["key"], req["opts"], config_limits(cfg))
    except NotJournal as exc:
        return cli.fail(str(exc), cli.EX_UNAVAILABLE)
    except sqlite3.Error as exc:
        return cli.fail(f"reading the journal: {exc}", cli.EX_IOERR)
    if not rsp.get("ok"):
        return cli.fail(str(rsp.get("error")), EX_USAGE if rsp.get("code") == "invalid" else cli.EX_UNAVAILABLE)
    found = rsp["trace"]
    if found is None:
        print(nothing(req, rsp.get("journal")), file=sys.stderr)
        return EX_NOTHING
    if args.json:
        print(as_json(found))
    elif args.csv:
        print(render_csv(found), end="")
    else:
        print(render(found))
    return cli.EX_OK


async def ask(cfg, req: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    from gateway.ops import cli

    return await cli.ask(cfg, req, timeout, limit=REPLY_LIMIT)


def nothing(req: dict[str, Any], span: dict[str, float] | None) -> str:
    what = {"material": "material batch", "order": "work order"}.get(req["kind"], req["kind"])
    text = f"nothing found for {what} {_shown(req['key'])}"
    if req["opts"].get("gtin"):
        text += f" with GTIN {req['opts']['gtin']}"
    if req["kind"] == "operator" and ("since" in req["opts"] or "until" in req["opts"]):
        text += f" between {local(req['opts'].get('since'))} and {local(req['opts'].get('until'))}"
    if span is None:
        return text + "; the journal is empty"
    to = "now" if time.time() - span["to"] < 120 else local(span["to"])
    return text + f"; the journal holds {local(span['from'])} … {to}"


# -- rendering ----------------------------------------------------------------------------------


def local(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def as_json(found: dict[str, Any]) -> str:
    return orjson.dumps(iso_times(found), option=orjson.OPT_INDENT_2).decode()


@functools.lru_cache(maxsize=65536)  # every tag's series has the same minutes
def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_times(found: dict[str, Any]) -> dict[str, Any]:
    """The trace with its times as ISO-8601 UTC text (the many points of tag series converted in place)."""
    out = {k: v for k, v in found.items() if k not in ("tags", "environment")}
    out = _iso(out)
    for section in ("tags", "environment"):
        if section in found:
            out[section] = [{**_iso({k: v for k, v in t.items() if k != "series"}), **({"series": _series(t["series"])} if "series" in t else {})}
                            for t in found[section]]
    return out


def _series(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for p in points:  # in place: thousands of points, and the answer is not used after
        p["t"] = utc(p["t"])
    return points


def _iso(obj: Any, key: str | None = None) -> Any:
    if isinstance(obj, dict):
        return {k: _iso(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_iso(v, key if key in TIME_KEYS else None) for v in obj]
    if key in TIME_KEYS and isinstance(obj, int | float) and not isinstance(obj, bool):
        return utc(obj)
    return obj


def clean(value: Any, width: int = 40) -> str:
    """A value from the journal for a terminal: control characters shown escaped, long ones cut."""
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= width else text[: width - 1] + "…"


SECTIONS: dict[str, tuple[str, ...]] = {
    "contexts": ("context_id", "station", "work_order", "operation", "lot", "started_at", "ended_at"),
    "operators": ("operator", "station", "context_id", "login_at", "logout_at"),
    "sessions": ("station", "login_at", "logout_at"),
    "materials": ("seq", "at", "station", "device", "status", "reason_code", "gtin", "batch", "serial", "expiry", "value"),
    "consumed": ("seq", "at", "station", "device", "work_order", "operation", "lot", "gtin", "batch", "serial", "status"),
    "tags": ("station", "device", "tag", "unit", "count", "min", "max", "mean", "low", "high", "out_of_limits"),
    "alarms": ("seq", "at", "device", "tag", "alarm", "state", "severity", "limit", "value"),
    "environment": ("station", "device", "tag", "unit", "count", "min", "max", "mean", "low", "high", "out_of_limits"),
    "gaps": ("first_seq", "last_seq", "count", "policy", "at"),
}


def rows(found: dict[str, Any], section: str) -> list[dict[str, Any]]:
    items = found["completeness"]["gaps"] if section == "gaps" else found.get(section)
    if items is None:
        return []
    if section in ("tags", "environment"):
        return [{**t, "low": (t["limits"] or {}).get("low"), "high": (t["limits"] or {}).get("high"),
                 "out_of_limits": "; ".join(f"{local(p['from'])}..{local(p['to'])}" for p in t["out_of_limits"])} for t in items]
    return items


def cell(section: str, column: str, value: Any, width: int = 40) -> str:
    if column in TIME_KEYS and isinstance(value, int | float):
        return local(value)
    return clean(value, width if column != "out_of_limits" else 200)


def render(found: dict[str, Any]) -> str:
    q, span = found["query"], found["journal"]
    head = f"trace {q['kind']} {clean(q['key'], 64)}" + (f" gtin {q['gtin']}" if q.get("gtin") else "")
    if q["kind"] == "operator":
        head += f" from {local(q['since'])} to {local(q['until'])}"
    out = [head + f"   (journal {local(span['from'])} … {local(span['to'])})"]
    if "completeness" in found:
        out += completeness_lines(found["completeness"])
    for section in ("contexts", "operators", "sessions", "materials", "consumed", "tags", "alarms", "environment"):
        if section not in found:
            continue
        items = rows(found, section)
        out.append("")
        out.append(f"{section} ({len(items)})")
        if items:
            out += table(section, items)
    return "\n".join(out)


def completeness_lines(c: dict[str, Any]) -> list[str]:
    line = (f"completeness: {c['readings']} records: {c['delivered']} delivered, {c['buffered']} buffered, "
            f"{c['dead_lettered']} dead-lettered, {c['discarded']} discarded")
    out = [line]
    if c["dead_lettered"] or c["gaps"]:
        out.append("INCOMPLETE: records of this window were dead-lettered or discarded; upstream copies lack them")
    for g in c["gaps"]:
        seqs = f"seq {g['first_seq']}..{g['last_seq']}" if g["first_seq"] is not None else "before getting a seq"
        out.append(f"  gap {seqs}: {g['count']} discarded ({clean(g['policy'])}) at {local(g['at'])}")
    return out


def table(section: str, items: list[dict[str, Any]]) -> list[str]:
    cols = SECTIONS[section]
    cells = [[cell(section, c, it.get(c)) for c in cols] for it in items]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    fmt = lambda r: "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(cols)] + [fmt(r) for r in cells]


def render_csv(found: dict[str, Any]) -> str:
    """One CSV table per section, each after a line naming it, separated by a blank line."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    first = True
    sections = [s for s in SECTIONS if s in found or (s == "gaps" and "completeness" in found)]
    if "completeness" in found:
        c = found["completeness"]
        w.writerow(["completeness"])
        w.writerow(["readings", "delivered", "buffered", "dead_lettered", "discarded"])
        w.writerow([c["readings"], c["delivered"], c["buffered"], c["dead_lettered"], c["discarded"]])
        first = False
    for section in sections:
        if not first:
            buf.write("\n")
        first = False
        w.writerow([section])
        w.writerow(SECTIONS[section])
        for it in rows(found, section):
            w.writerow([csv_value(c, it.get(c)) for c in SECTIONS[section]])
    return buf.getvalue()


def csv_value(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column in TIME_KEYS and isinstance(value, int | float):
        return local(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "@", "-", "\t", "\r"):
        return "'" + value  # a spreadsheet must not take a scanned text for a formula
    return value
