"""The last scans of each station, in memory: what the page shows when a browser (re)connects."""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any

LAST = 20
STATUSES = ("accepted", "warning", "rejected", "duplicate", "unassigned")
FIELDS = ("device", "type", "status", "reason_code", "message", "reason", "quality", "work_order", "lot",
          "kind", "gtin", "batch_lot", "serial", "expiry")
TEXT = 120  # characters of a scanned value kept for the page


def epoch(ts: Any) -> float | None:
    if isinstance(ts, datetime):
        return ts.timestamp()
    return float(ts) if isinstance(ts, (int, float)) else None


def entry(rec: dict[str, Any], n: int) -> dict[str, Any]:
    """What the page needs of a scan or RFID record; `n` numbers it for the browser."""
    out = {k: rec.get(k) for k in FIELDS}
    value = rec.get("value")
    out["value"] = None if value is None else str(value)[:TEXT]
    out["ts"] = epoch(rec.get("ts"))
    out["id"] = n
    if out["status"] not in STATUSES:
        out["status"] = "rejected" if rec.get("quality") == "bad" else "unassigned"
    return out


class Board:
    def __init__(self, last: int = LAST):
        self.last = last
        self.scans: dict[str, deque[dict[str, Any]]] = {}
        self.count = 0

    def add(self, rec: dict[str, Any]) -> dict[str, Any]:
        self.count += 1
        e = entry(rec, self.count)
        self.scans.setdefault(str(rec.get("station")), deque(maxlen=self.last)).append(e)
        return e

    def recent(self, station: str) -> list[dict[str, Any]]:
        """Newest first."""
        return list(reversed(self.scans.get(station, ())))
