"""One transaction of the capture log: what it does (`Plan`) and its statements (`stage` for a
group commit; `insert`, used by operator actions too). The statements run on the event loop and
touch only SQLite's page cache; the caller (gateway.capture.log) commits or rolls back, and keeps
the invariants stated at the top of that module.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from gateway.journal.aggregate import UPSERT, Point
from gateway.northbound.sink import Chunk

if TYPE_CHECKING:
    from gateway.capture.log import Batch, Log


@dataclass(slots=True)
class Row:
    """A batch given its seqs in a commit."""

    chunk: Chunk
    size: int
    protected: bool
    context_id: str | None
    only: str | None
    points: list[Point] | None


class Plan:
    """What one transaction does, and (after it) the resulting sizes and counters."""

    def __init__(self, batches: list[Batch], context: dict[str, str], dead: list, box: Log, everything: bool):
        st = box.stats
        self.batches = batches
        self.context = context
        self.dead = dead
        self.cfg = box.cfg
        self.readers = box.readers
        self.next = box._next
        self.counters: dict[str, Any] = dict(st.counters)  # the sinks' counts are added at the COMMIT (Log._commit)
        self.backlog_rows, self.backlog_bytes = st.rows, st.bytes
        self.d_rows, self.d_bytes = st.dead_rows, st.dead_bytes
        self.inserted: list[Row] = []
        self.cursors: list[tuple[str, int]] = []  # (sink, cursor) written in this transaction
        self.gone: list[tuple[int, int]] = []  # (records, bytes) of rows deleted (requeue/purge never delete log rows)
        self.gone_telemetry = 0
        self.discards: list[tuple[int, int, int, str, str, str | None]] = []  # (first, last, bytes, device, type, only)
        self.shed_newest: list[tuple[str, str, int]] = []
        self.discarded = 0
        self.pruned = 0
        due = box._minutes.due(everything)
        self.minutes = due
        self.mark = due[1] if due else None

    def busy(self) -> list[tuple[int, int]]:
        return [b for r in self.readers.values() if (b := r.busy())]

    @property
    def floor(self) -> int:
        return min((r.cursor for r in self.readers.values()), default=self.next - 1)



INSERT = "INSERT INTO log(seq, last, type, station, device, context_id, at, protected, only, head, items, size) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


def stage(conn: sqlite3.Connection, p: Plan) -> None:
    """The statements of one group commit (the caller commits or rolls back)."""
    c = p.counters
    if p.dead:
        _dead_letter(conn, p)
    # Captured: every record that reached this commit, inserted or discarded by the policy in it
    # (counted before the policy, which may shorten a batch).
    c["captured"] += sum(len(b.items) for b in p.batches)
    insert(conn, p, _make_room(conn, p) if p.batches else p.batches)
    for station, state in p.context.items():
        conn.execute("INSERT OR REPLACE INTO context(station, state) VALUES (?, ?)", (station, state))
    if p.minutes:
        conn.executemany(UPSERT, p.minutes[0])
    c["discarded"] += p.discarded


def insert(conn: sqlite3.Connection, p: Plan, batches: list[Batch]) -> None:
    """Give `batches` their seqs and write them as log rows, with their index keys and contexts."""
    rows = []
    keys = []
    intervals = []
    seq = p.next
    for b in batches:
        n = len(b.items)
        items = b"\n".join(b.items)
        size = len(b.head) + len(items)
        chunk = Chunk(seq, seq + n - 1, b.type, b.station, b.device, b.at, b.head, items)
        rows.append((seq, seq + n - 1, b.type, b.station, b.device, b.context_id, b.at, int(b.protected), b.only, b.head, items, size))
        p.inserted.append(Row(chunk, size, b.protected, b.context_id, b.only, b.points))
        if b.keys:
            keys.extend((k, v, seq, b.at, b.station) for k, v in b.keys)
        if b.interval:
            intervals.append((*b.interval, seq, seq))
        seq += n
    if rows:
        conn.executemany(INSERT, rows)
    if keys:
        conn.executemany("INSERT OR IGNORE INTO keys(key, value, seq, at, station) VALUES (?,?,?,?,?)", keys)
    for iv in intervals:
        conn.execute(
            "INSERT INTO contexts VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(context_id) DO UPDATE SET work_order = excluded.work_order, "
            "operation = excluded.operation, lot = excluded.lot, ended_at = excluded.ended_at, last_seq = excluded.last_seq",
            iv,
        )
    p.next = seq


def _dead_letter(conn: sqlite3.Connection, p: Plan) -> None:
    """Copy refused records into `dead_letter`, whole, with the reason (the log row stays: the
    other sinks and the journal still need it)."""
    now = time.time()
    out = []
    for sink, first, last, reason in p.dead:
        for seq, l, type_, prot, head, items in conn.execute(
            "SELECT seq, last, type, protected, head, items FROM log WHERE seq >= coalesce((SELECT max(seq) FROM log WHERE seq <= ?), 0) AND seq <= ?",
            (first, last),
        ):
            if l < first:
                continue
            h = orjson.loads(head)
            for i, line in enumerate(bytes(items).split(b"\n")):
                s = seq + i
                if first <= s <= last:
                    rec = orjson.dumps({"seq": s, **h, **orjson.loads(line)})
                    out.append((s, sink, type_, prot, reason, now, rec))
    conn.executemany("INSERT OR REPLACE INTO dead_letter(seq, sink, type, protected, reason, at, record) VALUES (?,?,?,?,?,?,?)", out)
    p.d_rows += len(out)
    p.d_bytes += sum(len(o[6]) for o in out)
    _prune_dead(conn, p)


def _prune_dead(conn: sqlite3.Connection, p: Plan) -> None:
    """Keep the dead-letter table within its limits: delete its oldest rows, counted."""
    max_rows, max_bytes = p.cfg.dead_letter_max_rows, p.cfg.dead_letter_max_bytes
    while p.d_rows > max_rows or p.d_bytes > max_bytes:
        want = max(p.d_rows - max_rows, 1)
        if p.d_bytes > max_bytes:
            want = max(want, (p.d_bytes - max_bytes) * p.d_rows // max(p.d_bytes, 1) + 1)
        gone = conn.execute(
            "DELETE FROM dead_letter WHERE rowid IN (SELECT rowid FROM dead_letter ORDER BY seq LIMIT ?) RETURNING length(record)", (want,)
        ).fetchall()
        if not gone:
            break
        p.d_rows -= len(gone)
        p.d_bytes -= sum(g[0] for g in gone)
        p.pruned += len(gone)
        p.counters["dead_letter_pruned"] += len(gone)


def _make_room(conn: sqlite3.Connection, p: Plan) -> list[Batch]:
    """Apply the overflow policy so that the new records fit; return the batches still to insert."""
    batches = p.batches
    cfg = p.cfg
    new_rows = sum(len(b.items) for b in batches)
    new_bytes = sum(b.size for b in batches)
    over_rows = p.backlog_rows + new_rows - cfg.max_rows
    over_bytes = p.backlog_bytes + new_bytes - cfg.max_bytes
    if over_rows <= 0 and over_bytes <= 0:
        return batches
    now = time.time()
    if cfg.overflow == "drop_oldest":
        busy = p.busy()
        spare = " ".join(f"AND NOT (last >= {lo} AND seq <= {hi})" for lo, hi in busy)
        floor = p.floor
        while over_rows > 0 or over_bytes > 0:
            avg = max(p.backlog_rows, 1) and max(p.backlog_bytes, 1) / max(p.backlog_rows, 1)
            want = max(over_rows, int(over_bytes / avg) + 1 if over_bytes > 0 else 0, 1)
            gone = conn.execute(
                f"DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE protected = 0 AND last > ? {spare} ORDER BY seq LIMIT ?) "
                "RETURNING seq, last, size, device, type, only",
                (floor, max(1, want // 16)),
            ).fetchall()
            if not gone:
                break
            for r in p.readers.values():
                # Before the COMMIT is awaited: no reader may hand out from memory what this deletes.
                r.forget()
            gone.sort()
            for seq, last, size, device, type_, only in gone:
                lo = max(seq, floor + 1)
                n = last - lo + 1
                over_rows -= n
                over_bytes -= size * n // (last - seq + 1)
                p.discarded += n
                p.discards.append((seq, last, size, device, type_, only))
                p.gone.append((last - seq + 1, size))
                p.gone_telemetry += size
            p.backlog_rows = max(p.backlog_rows - sum(last - max(s, floor + 1) + 1 for s, last, *_ in gone), 0)
            conn.executemany(
                "INSERT INTO discards(first_seq, last_seq, count, policy, at) VALUES (?, ?, ?, ?, ?)",
                [(a, b, b - a + 1, cfg.overflow, now) for a, b in _runs([(max(s, floor + 1), last) for s, last, *_ in gone])],
            )
    if over_rows > 0 or over_bytes > 0:
        # drop_newest, or nothing old left to drop: the newest incoming telemetry gives way, as much
        # as needed; protected records stay.
        keep = []
        dropped = 0
        for b in reversed(batches):
            if (over_rows > 0 or over_bytes > 0) and not b.protected:
                # The newest records of the batch, as many as needed (the whole batch at most).
                per = max(b.size // max(len(b.items), 1), 1)
                n = min(len(b.items), max(over_rows, -(-over_bytes // per), 1))
                over_rows -= n
                over_bytes -= n * per
                dropped += n
                p.shed_newest.append((b.device, b.type, n))
                if n < len(b.items):  # a shortened copy: a rolled-back commit requeues the batch whole
                    k = len(b.items) - n
                    keep.append(replace(b, items=b.items[:k], points=None if b.points is None else b.points[:k], size=b.size - n * per))
            else:
                keep.append(b)
        if dropped:
            p.discarded += dropped
            conn.execute("INSERT INTO discards(first_seq, last_seq, count, policy, at) VALUES (NULL, NULL, ?, ?, ?)", (dropped, cfg.overflow, now))
            batches = keep[::-1]
    return batches


def _runs(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge sorted (first, last) ranges that touch into runs."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]
