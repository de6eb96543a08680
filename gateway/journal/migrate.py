"""Opening a file written by an earlier release: formats 0 and 1 (the outbox) become format 2.

The outbox held only undelivered rows, each a topic and the record's JSON without its opening brace.
Each becomes a chunk of one record under the same seq, so nothing is lost or renumbered; the first
sink's cursor is the seq before the oldest of them (everything below was delivered). Dead letters
keep their seq and reason, the station contexts and the counters stay. All in one transaction:
a migration cut by a crash leaves the old file as it was.
"""

from __future__ import annotations

import re
import sqlite3
import time

import orjson

from gateway.journal.keys import interval, keys
from gateway.journal.schema import FORMAT, SCHEMA

PROTECTED_TYPES = ("scan", "rfid", "alarm", "context")


class TooNew(Exception):
    """The file was written by a newer release."""


def prepare(conn: sqlite3.Connection, sinks: list[str]) -> str | None:
    """Bring the file to FORMAT; return what was done ("created", "migrated from format N") or None."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == FORMAT:
        conn.executescript(SCHEMA)  # indexes added since, if any
        return None
    if version > FORMAT:
        raise TooNew(f"the file has format {version}, written by a newer release; this one reads formats up to {FORMAT}")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "outbox" in tables:
            old = 1 if _has(conn, "dead_letter", "protected") else 0
            _migrate(conn, sinks, tables)
            done = f"migrated from format {old}"
        else:
            create(conn)
            _set(conn, "next_seq", int(time.time() * 1000) * 1000 + 1)
            done = "created"
        conn.execute(f"PRAGMA user_version = {FORMAT}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return done


def create(conn: sqlite3.Connection) -> None:
    """The tables and indexes of FORMAT, inside the caller's transaction (executescript would commit)."""
    for stmt in re.sub(r"--[^\n]*", "", SCHEMA).split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _has(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return conn.execute("SELECT 1 FROM pragma_table_info(?) WHERE name = ?", (table, column)).fetchone() is not None


def _set(conn: sqlite3.Connection, key: str, value) -> None:
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, orjson.dumps(value).decode()))


def _migrate(conn: sqlite3.Connection, sinks: list[str], tables: set[str]) -> None:
    conn.execute("ALTER TABLE dead_letter RENAME TO dead_letter_v1")
    create(conn)
    high = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    high = high[0] if high else int(time.time() * 1000) * 1000
    rows = conn.execute("SELECT seq, topic, payload, protected, at FROM outbox ORDER BY seq").fetchall()
    for seq, topic, payload, protected, at in rows:
        rec = _record(topic, payload)
        head = orjson.dumps(rec)
        type_ = str(rec.get("type") or topic.rsplit("/", 1)[-1])
        station, device = _where(topic, rec)
        conn.execute(
            "INSERT INTO log(seq, last, type, station, device, context_id, at, protected, only, head, items, size) VALUES (?,?,?,?,?,?,?,?,NULL,?,?,?)",
            (seq, seq, type_, station, device, rec.get("context_id"), at, int(bool(protected)), head, b"{}", len(head) + 2),
        )
        if protected:
            conn.executemany("INSERT OR IGNORE INTO keys(key, value, seq, at, station) VALUES (?,?,?,?,?)",
                             [(k, v, seq, at, station) for k, v in keys(rec)])
            iv = interval(rec, at)
            if iv:
                conn.execute("INSERT OR REPLACE INTO contexts VALUES (?,?,?,?,?,?,?,?,?)", (*iv, seq, seq))
    first = rows[0][0] if rows else high + 1
    for name in sinks[:1]:
        conn.execute("INSERT OR REPLACE INTO cursors(sink, seq) VALUES (?, ?)", (name, first - 1))
    sink = sinks[0] if sinks else "mqtt"
    protected_col = "protected" if _has(conn, "dead_letter_v1", "protected") else "0"
    for seq, topic, payload, reason, at, prot in conn.execute(f"SELECT seq, topic, payload, reason, at, {protected_col} FROM dead_letter_v1").fetchall():
        rec = _record(topic, payload)
        conn.execute(
            "INSERT OR REPLACE INTO dead_letter(seq, sink, type, protected, reason, at, record) VALUES (?,?,?,?,?,?,?)",
            (seq, sink, str(rec.get("type") or topic.rsplit("/", 1)[-1]), int(bool(prot)), reason, at, orjson.dumps({"seq": seq, **rec})),
        )
    counters = conn.execute("SELECT value FROM meta WHERE key = 'counters'").fetchone()
    c = orjson.loads(counters[0]) if counters else {}
    c["sinks"] = {sink: {"acked": c.pop("published", 0), "dead_lettered": c.pop("dead_lettered", 0)}}
    _set(conn, "counters", c)
    _set(conn, "next_seq", high + 1)
    _set(conn, "aggregated", high)  # the old outbox kept no aggregates: start after what it held
    conn.execute("DROP TABLE outbox")
    conn.execute("DROP TABLE dead_letter_v1")


def _record(topic: str, payload: bytes) -> dict:
    try:
        rec = orjson.loads(b"{" + bytes(payload))
    except orjson.JSONDecodeError:
        # Kept whole rather than lost: a row the old release wrote and cannot be read as JSON.
        rec = {"type": topic.rsplit("/", 1)[-1], "quality": "bad", "reason": "unreadable row of an earlier release", "raw": bytes(payload).decode("utf-8", "replace")}
    return rec if isinstance(rec, dict) else {"value": rec}


def _where(topic: str, rec: dict) -> tuple[str, str]:
    """(station, device) of an old row: from the record, else from its topic
    (`…/<station>/<device>/<type>` or `…/<station>/context`)."""
    parts = topic.split("/")
    if rec.get("type") == "context" or parts[-1] == "context":
        return str(rec.get("station") or (parts[-2] if len(parts) > 1 else "")), ""
    station = rec.get("station") or (parts[-3] if len(parts) > 2 else "")
    device = rec.get("device") or (parts[-2] if len(parts) > 1 else "")
    return str(station), str(device)
