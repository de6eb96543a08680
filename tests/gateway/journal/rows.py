"""Journal files written row by row in the capture log's format (gateway.journal.schema), the way the
log lays them out: chunks of one device and type, keys of protected records, contexts from context
events, minute aggregates of telemetry. For trace tests that need exact times, holes and dead letters."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.journal.schema import FORMAT, SCHEMA

PROTECTED = frozenset({"scan", "rfid", "alarm", "context"})
KEYS = ("work_order", "lot", "operation", "context_id", "gtin", "serial", "alarm")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def keys_of(rec: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(k, str(rec[k])) for k in KEYS if rec.get(k) is not None]
    if rec.get("batch_lot") is not None:
        out.append(("batch", str(rec["batch_lot"])))
    if rec.get("epc_uri") is not None:
        out.append(("epc", str(rec["epc_uri"])))
    out += [("operator", str(o)) for o in rec.get("operators") or ()]
    return out


def create(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version={FORMAT}")
    return conn


class Writer:
    """Appends chunks with contiguous seqs; `close()` writes the minute aggregates."""

    def __init__(self, conn: sqlite3.Connection, seq: int = 1_000_000, gateway_id: str = "gw-test"):
        self.conn, self.seq, self.gateway_id = conn, seq, gateway_id
        self.minutes: dict[tuple, list] = {}
        self.where: dict[tuple, tuple[str, str | None]] = {}
        self.ctx: dict[str, dict[str, Any]] = {}  # current context fields per station

    def context(self, station: str, event: str, at: float, **fields: Any) -> int:
        """A context event: started (work_order, operation, lot, operators), updated, operator_in/out, ended."""
        cur = dict(self.ctx.get(station) or {"context_id": None, "work_order": None, "operation": None, "lot": None, "operators": []})
        if event == "started":
            cur = {"context_id": fields.pop("context_id"), "work_order": None, "operation": None, "lot": None,
                   "operators": cur["operators"], "started_at": at, "ended_at": None}
        cur.update(fields)
        rec = {"gateway_id": self.gateway_id, "schema": 1, "type": "context", "ts": iso(at), "ingested_at": iso(at), "station": station,
               "event": event, "state": "idle" if event == "ended" else "active", **cur,
               "started_at": iso(cur["started_at"]) if cur.get("started_at") else None, "ended_at": iso(at) if event == "ended" else None}
        seq = self.chunk("context", station, "", cur["context_id"], at, [rec])
        cid = cur["context_id"]
        if event == "started":
            self.conn.execute("INSERT INTO contexts VALUES(?,?,?,?,?,?,NULL,?,?)",
                              (cid, station, cur["work_order"], cur["operation"], cur["lot"], at, seq, seq))
        elif cid is not None:
            self.conn.execute("UPDATE contexts SET operation=?, lot=?, last_seq=?, ended_at=? WHERE context_id=?",
                              (cur["operation"], cur["lot"], seq, at if event == "ended" else None, cid))
        if event == "ended":
            cur = {"context_id": None, "work_order": None, "operation": None, "lot": None, "operators": cur["operators"]}
        self.ctx[station] = cur
        return seq

    def stamped(self, station: str) -> dict[str, Any]:
        c = self.ctx.get(station) or {}
        return {"context": "active" if c.get("context_id") else "unassigned", "context_id": c.get("context_id"),
                "work_order": c.get("work_order"), "operation": c.get("operation"), "lot": c.get("lot"),
                "operators": list(c.get("operators") or ())}

    def readings(self, type_: str, station: str, device: str, at: float, items: list[dict[str, Any]], kind: str = "modbus", only: str | None = None) -> int:
        """Records of one device and type, stamped with the station's current context."""
        head = {"gateway_id": self.gateway_id, "schema": 1, "type": type_, "ingested_at": iso(at), "station": station,
                "device": device, "device_kind": kind, **self.stamped(station)}
        recs = [{**head, "ts": iso(at), **i} for i in items]
        return self.chunk(type_, station, device, head["context_id"], at, recs, only=only)

    def chunk(self, type_: str, station: str, device: str, context_id: str | None, at: float, recs: list[dict[str, Any]], only: str | None = None) -> int:
        first = self.seq
        last = first + len(recs) - 1
        self.seq = last + 1
        shared = {k: v for k, v in recs[0].items() if all(k in r and r[k] == v for r in recs[1:])} if len(recs) > 1 else {}
        head = orjson.dumps({"type": type_, "station": station, "device": device, "context_id": context_id, **shared})
        items = b"\n".join(orjson.dumps({k: v for k, v in r.items() if k not in shared}) for r in recs)
        protected = type_ in PROTECTED
        self.conn.execute("INSERT INTO log VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                          (first, last, type_, station, device, context_id, at, int(protected), only, head, items, len(head) + len(items)))
        for i, rec in enumerate(recs):
            if protected:
                self.conn.executemany("INSERT OR IGNORE INTO keys VALUES(?,?,?,?,?)", [(k, v, first + i, at, station) for k, v in keys_of(rec)])
            elif type_ == "telemetry":
                self._aggregate(station, device, context_id or "", at, rec, first + i)
        return first

    def _aggregate(self, station: str, device: str, cid: str, at: float, rec: dict[str, Any], seq: int) -> None:
        k = (cid, device, rec["tag"], int(at // 60))
        a = self.minutes.get(k)
        if a is None:
            a = self.minutes[k] = [0, 0, None, None, None, 0, rec.get("unit"), seq, seq]
            self.where[k] = (station, rec.get("unit"))
        v = rec.get("value")
        a[0] += 1
        if isinstance(v, int | float) and not isinstance(v, bool):
            a[1] += 1
            a[2] = v if a[2] is None else min(a[2], v)
            a[3] = v if a[3] is None else max(a[3], v)
            a[4] = v if a[4] is None else a[4] + v
        a[5] += rec.get("quality", "good") != "good"
        a[8] = seq

    def cursor(self, sink: str, seq: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO cursors VALUES(?,?)", (sink, seq))

    def dead(self, seq: int, sink: str, reason: str, at: float) -> None:
        self.conn.execute("INSERT INTO dead_letter VALUES(?,?,?,?,?,?,?)", (seq, sink, "telemetry", 0, reason, at, b"{}"))

    def discard(self, first: int | None, last: int | None, count: int, at: float, policy: str = "drop_oldest") -> None:
        self.conn.execute("INSERT INTO discards(first_seq, last_seq, count, policy, at) VALUES(?,?,?,?,?)", (first, last, count, policy, at))

    def skip(self, n: int) -> tuple[int, int]:
        """Seqs given out and then discarded: a hole in the log."""
        first = self.seq
        self.seq += n
        return first, self.seq - 1

    def close(self) -> None:
        rows = defaultdict(list)
        for k, a in self.minutes.items():
            station, unit = self.where[k]
            rows[0].append((station, k[1], k[2], k[0], k[3], a[0], a[1], a[2], a[3], a[4], a[5], unit, a[7], a[8]))
        self.conn.executemany("INSERT INTO minutes VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows[0])
        self.minutes.clear()
