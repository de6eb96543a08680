"""Dead letters: records a sink (its broker, its encoder) refused for good, kept in the buffer file
with the sink and the reason, and `shopfloor-gateway dead-letter list|show|requeue|purge`.

The running daemon is the only writer of the buffer file, so with a daemon the command goes through
its control socket (`{"cmd": "dead_letter", "action": …}`, answered by `handle` on the daemon's
log); without one the command opens the file itself, under the buffer's lock. Requeued records go
back into the log under new seqs, for the sink that refused them only, and are sent again; the
journal keeps the original record under its old seq.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.capture.log import Batch, Log, _Plan, insert

CUT = 72  # characters of a reason shown by `list`
SHOW_MAX = 256 * 1024  # payload bytes `show` returns: an answer on the control socket is one line of at most 1 MiB
LIST_MAX = 10_000
ACTIONS = ("list", "show", "requeue", "purge")


@dataclass(frozen=True)
class Filter:
    """Which dead letters: a seq range, a reason (substring, any case), an age."""

    first: int | None = None
    last: int | None = None
    reason: str | None = None
    older_than: float | None = None  # seconds

    @classmethod
    def of(cls, req: dict[str, Any]) -> Filter:
        for key in ("first", "last"):
            if req.get(key) is not None and not (isinstance(req[key], int) and not isinstance(req[key], bool)):
                raise ValueError(f"{key} must be an integer seq")
        if req.get("reason") is not None and not isinstance(req["reason"], str):
            raise ValueError("reason must be a string")
        age = req.get("older_than")
        if age is not None and (not isinstance(age, int | float) or isinstance(age, bool) or age < 0):
            raise ValueError("older_than must be a number of seconds >= 0")
        return cls(req.get("first"), req.get("last"), req.get("reason"), age)

    @property
    def empty(self) -> bool:
        return self == Filter()

    def where(self, now: float) -> tuple[str, list[Any]]:
        terms, args = ["1"], []
        if self.first is not None:
            terms.append("seq >= ?")
            args.append(self.first)
        if self.last is not None:
            terms.append("seq <= ?")
            args.append(self.last)
        if self.reason:
            terms.append("instr(lower(reason), lower(?)) > 0")
            args.append(self.reason)
        if self.older_than is not None:
            terms.append("at <= ?")
            args.append(now - self.older_than)
        return " AND ".join(terms), args


def cut(text: str, n: int = CUT) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def listing(conn: sqlite3.Connection, f: Filter, limit: int) -> dict[str, Any]:
    where, args = f.where(time.time())
    total = conn.execute(f"SELECT count(*) FROM dead_letter WHERE {where}", args).fetchone()[0]
    rows = conn.execute(
        f"SELECT seq, at, sink, type, reason, length(record) FROM dead_letter WHERE {where} ORDER BY seq LIMIT ?", [*args, limit]
    ).fetchall()
    items = [{"seq": s, "at": at, "sink": k, "type": t, "reason": cut(r), "bytes": n} for s, at, k, t, r, n in rows]
    return {"ok": True, "total": total, "dead_letters": items}


def record(conn: sqlite3.Connection, seq: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT sink, type, reason, at, protected, substr(record, 1, ?), length(record) FROM dead_letter WHERE seq = ? ORDER BY sink LIMIT 1",
        (SHOW_MAX, seq),
    ).fetchone()
    if row is None:
        return {"ok": False, "error": f"no dead letter with seq {seq}"}
    sink, type_, reason, at, protected, body, size = row
    return {
        "ok": True,
        "dead_letter": {"seq": seq, "at": at, "sink": sink, "type": type_, "reason": reason, "protected": bool(protected), "bytes": size},
        "record": bytes(body).decode("utf-8", "replace"),
        "truncated": size > SHOW_MAX,
    }


def requeue(f: Filter):
    """The log transaction (see Log.revise) that moves matching dead letters back, oldest first."""

    def stage(conn: sqlite3.Connection, p: _Plan) -> int:
        now = time.time()
        where, args = f.where(now)
        rows = conn.execute(f"SELECT seq, sink, type, protected, record FROM dead_letter WHERE {where} ORDER BY seq", args).fetchall()
        batches = []
        for _, sink, type_, protected, rec in rows:
            r = orjson.loads(rec)
            r.pop("seq", None)
            head = orjson.dumps(r)
            batches.append(Batch(type_, str(r.get("station", "")), str(r.get("device", "")), r.get("context_id"), bool(protected),
                                 head, [b"{}"], now, len(head) + 2, only=sink))
        insert(conn, p, batches)
        if rows:
            conn.execute(f"DELETE FROM dead_letter WHERE {where}", args)
        p.d_rows -= len(rows)
        p.d_bytes -= sum(len(r[4]) for r in rows)
        p.counters["requeued"] += len(rows)
        return len(rows)

    return stage


def purge(f: Filter):
    def stage(conn: sqlite3.Connection, p: _Plan) -> int:
        where, args = f.where(time.time())
        gone = conn.execute(f"DELETE FROM dead_letter WHERE {where} RETURNING length(record)", args).fetchall()
        p.d_rows -= len(gone)
        p.d_bytes -= sum(g[0] for g in gone)
        p.counters["dead_letter_purged"] += len(gone)
        return len(gone)

    return stage


async def handle(box: Log, req: dict[str, Any]) -> dict[str, Any]:
    """Answer one `dead_letter` control request against `box` (the daemon's log, or one the CLI opened)."""
    action = req.get("action")
    try:
        f = Filter.of(req)
        if action == "list":
            limit = req.get("limit", 50)
            if not isinstance(limit, int) or not 1 <= limit <= LIST_MAX:
                raise ValueError(f"limit must be an integer from 1 to {LIST_MAX}")
            return await box.read(lambda conn: listing(conn, f, limit))
        if action == "show":
            seq = req.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise ValueError("seq must be an integer")
            return await box.read(lambda conn: record(conn, seq))
        if action in ("requeue", "purge"):
            if f.empty and not req.get("all"):
                raise ValueError(f"{action}: give --first/--last, --reason, --older-than or --all")
            n = await box.revise((requeue if action == "requeue" else purge)(f))
            return {"ok": True, action + "d": n}
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"action must be one of {', '.join(ACTIONS)}, got {action!r}"}
