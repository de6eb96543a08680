"""Per-minute telemetry aggregates (table `minutes`), folded in memory as records are committed.

A minute (of ingest time) is written once it is over, in the same transaction as a watermark:
every telemetry record with seq <= watermark is in the table. A minute under way may be written in
parts (at close, and before a trace): the table adds each part to what it holds, and the part's
records are no longer in memory. After a crash the log refolds the
records after the watermark (they are still in the log: retention keeps far more than a few
minutes), so no aggregate misses a record or counts one twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class Acc:
    station: str
    count: int
    numeric: int
    min: float | None
    max: float | None
    sum: float
    bad: int
    unit: str | None
    first_seq: int
    last_seq: int


Key = tuple[str, str, str, int]  # context_id ('' unassigned), device, tag, minute
Point = tuple[str, object, str | None, bool]  # tag, value, unit, good

UPSERT = (
    "INSERT INTO minutes(context_id, device, tag, minute, station, count, numeric, min, max, sum, bad, unit, first_seq, last_seq) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(context_id, device, tag, minute) DO UPDATE SET "
    "count = count + excluded.count, numeric = numeric + excluded.numeric, "
    "min = CASE WHEN min IS NULL OR excluded.min < min THEN excluded.min ELSE min END, "
    "max = CASE WHEN max IS NULL OR excluded.max > max THEN excluded.max ELSE max END, "
    "sum = coalesce(sum, 0) + coalesce(excluded.sum, 0), bad = bad + excluded.bad, "
    "unit = coalesce(excluded.unit, unit), first_seq = min(first_seq, excluded.first_seq), last_seq = max(last_seq, excluded.last_seq)"
)


class Minutes:
    def __init__(self, watermark: int):
        self.watermark = watermark  # every telemetry record at or below is in the table
        self.acc: dict[Key, Acc] = {}
        self.minute = -1  # the newest minute folded
        self.folded = watermark  # highest seq folded

    def fold(self, first_seq: int, station: str, device: str, context_id: str | None, at: float, points: list[Point]) -> None:
        minute = int(at // 60)
        if minute > self.minute:
            self.minute = minute
        cid = context_id or ""
        acc = self.acc
        seq = first_seq
        for tag, value, unit, good in points:
            key = (cid, device, tag, minute)
            a = acc.get(key)
            if a is None:
                a = acc[key] = Acc(station, 0, 0, None, None, 0.0, 0, unit, seq, seq)
            a.count += 1
            a.last_seq = seq
            if not good:
                a.bad += 1
            t = type(value)
            if t is int or (t is float and math.isfinite(value)):  # not bool: True is no measurement
                a.numeric += 1
                a.sum += value
                if a.numeric == 1:
                    a.min = a.max = value
                elif value < a.min:
                    a.min = value
                elif value > a.max:
                    a.max = value
            seq += 1
        if seq - 1 > self.folded:
            self.folded = seq - 1

    def due(self, everything: bool = False) -> tuple[list[tuple], int] | None:
        """Rows of the minutes that are over (all of them with `everything`) and the watermark to
        write with them; None when nothing is due. Call `written()` once they are committed."""
        closed = [k for k in self.acc if everything or k[3] < self.minute]
        if not closed:
            return None
        rows = []
        for k in closed:
            a = self.acc[k]
            rows.append((*k, a.station, a.count, a.numeric, a.min, a.max, a.sum if a.numeric else None, a.bad, a.unit, a.first_seq, a.last_seq))
        rest = [a.first_seq for k, a in self.acc.items() if not (everything or k[3] < self.minute)]
        mark = min(rest) - 1 if rest else self.folded
        return rows, mark

    def written(self, rows: list[tuple], mark: int) -> None:
        for r in rows:
            self.acc.pop(r[:4], None)
        self.watermark = max(self.watermark, mark)
