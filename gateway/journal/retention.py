"""Journal retention: what the log may let go once every sink has a record, in small steps.

- Raw telemetry is kept within a size budget (`journal.telemetry_bytes`): the oldest delivered
  telemetry goes first. A budget of 0 keeps no delivered telemetry at all.
- Scans, RFID reads, alarms and context events (protected records), their index keys, the context
  intervals and the per-minute aggregates are kept for `journal.keep_days`.
- Nothing that some configured sink has not yet acknowledged (seq above the lowest cursor) is
  ever pruned here; the overflow policy (gateway.capture.log) is the only other way out of the log.

Each step deletes at most STEP rows per table, so one transaction stays short: capture never
waits for pruning longer than for one small commit.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

STEP = 1000  # rows one transaction deletes from one table
STEP_BYTES = 1024 * 1024  # and bytes of telemetry: a row may hold a thousand readings


@dataclass(slots=True)
class Pruned:
    telemetry: int = 0  # records
    telemetry_bytes: int = 0
    kept_records: int = 0  # protected records past keep_days
    kept_bytes: int = 0
    other: int = 0  # index keys, contexts, minutes
    rows: list[tuple[int, int]] = field(default_factory=list)  # (records, bytes) per deleted log row

    @property
    def full(self) -> bool:
        """A step deleted as much as it may: there is probably more to do."""
        return len(self.rows) >= STEP or self.other >= STEP or self.telemetry_bytes >= STEP_BYTES // 2


def step(conn: sqlite3.Connection, floor: int, telemetry_excess: int, cutoff: float) -> Pruned:
    """Delete one step's worth; `floor`: the lowest sink cursor; `telemetry_excess`: bytes of
    delivered telemetry above the budget; `cutoff`: protected records ingested before it go."""
    p = Pruned()
    if telemetry_excess > 0:
        gone = conn.execute(
            "DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE protected = 0 AND last <= ? ORDER BY seq LIMIT ?) "
            "RETURNING last - seq + 1, size",
            (floor, _rows_for(conn, telemetry_excess)),
        ).fetchall()
        p.rows.extend(gone)
        p.telemetry = sum(g[0] for g in gone)
        p.telemetry_bytes = sum(g[1] for g in gone)
    oldest = conn.execute("SELECT at FROM log WHERE protected = 1 ORDER BY seq LIMIT 1").fetchone()
    # Ingest times rise with seq: when the oldest kept record is young enough, none is old (a scan
    # of a year of scans for nothing, every step, would cost capture its time).
    if oldest is not None and oldest[0] < cutoff:
        gone = conn.execute(
            "DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE protected = 1 AND last <= ? AND at < ? ORDER BY seq LIMIT ?) "
            "RETURNING last - seq + 1, size, seq",
            (floor, cutoff, STEP),
        ).fetchall()
        if gone:
            p.rows.extend((g[0], g[1]) for g in gone)
            p.kept_records = sum(g[0] for g in gone)
            p.kept_bytes = sum(g[1] for g in gone)
            conn.execute("DELETE FROM keys WHERE seq <= ? AND at < ?", (max(g[2] for g in gone), cutoff))
    p.other += _minutes(conn, cutoff)
    p.other += conn.execute(
        "DELETE FROM contexts WHERE context_id IN (SELECT context_id FROM contexts WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?)",
        (cutoff, STEP),
    ).rowcount
    return p


def _minutes(conn: sqlite3.Connection, cutoff: float) -> int:
    """Delete a step of minute aggregates older than `cutoff`, station by station through the
    (station, minute) index: without a station a look for old minutes reads the whole table."""
    minute = int(cutoff // 60)
    gone = 0
    station = ""
    while gone < STEP:
        # The next station: one seek in the index, where DISTINCT would read all of it.
        (station,) = conn.execute("SELECT min(station) FROM minutes WHERE station > ?", (station,)).fetchone()
        if station is None:
            break
        old = conn.execute(
            "SELECT context_id, device, tag, minute FROM minutes WHERE station = ? AND minute < ? LIMIT ?", (station, minute, STEP - gone)
        ).fetchall()
        if old:
            conn.executemany("DELETE FROM minutes WHERE context_id = ? AND device = ? AND tag = ? AND minute = ?", old)
            gone += len(old)
    return gone


def _rows_for(conn: sqlite3.Connection, excess: int) -> int:
    """How many log rows of telemetry make up about `excess` bytes (at least one, at most STEP
    rows and STEP_BYTES)."""
    avg = conn.execute("SELECT avg(size) FROM (SELECT size FROM log WHERE protected = 0 ORDER BY seq LIMIT 64)").fetchone()[0] or 1
    return max(1, min(STEP, int(min(excess, STEP_BYTES) // avg) + 1))
