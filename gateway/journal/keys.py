"""What the journal indexes a protected record by (table `keys`): the ids a trace starts from."""

from __future__ import annotations

from typing import Any

# record field -> key in the index
FIELDS = (
    ("work_order", "work_order"),
    ("lot", "lot"),
    ("operation", "operation"),
    ("context_id", "context_id"),
    ("gtin", "gtin"),
    ("batch_lot", "batch"),
    ("serial", "serial"),
    ("sscc", "sscc"),
    ("epc_uri", "epc"),
    ("badge", "operator"),
)
MAX_VALUE = 256  # longer values are not indexed (identifiers are at most 64 characters)


def keys(rec: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) pairs of one record: its context, the material it names, the people in it."""
    out = []
    for field, key in FIELDS:
        v = rec.get(field)
        if isinstance(v, str) and 0 < len(v) <= MAX_VALUE:
            out.append((key, v))
    ops = rec.get("operators")
    if isinstance(ops, list):
        out.extend(("operator", o) for o in ops if isinstance(o, str) and 0 < len(o) <= MAX_VALUE)
    if rec.get("type") == "alarm" and isinstance(rec.get("tag"), str):
        out.append(("alarm", rec["tag"][:MAX_VALUE]))
    return list(dict.fromkeys(out))


def interval(rec: dict[str, Any], at: float) -> tuple | None:
    """A context event's row of `contexts` (None for events of no context, e.g. an unassigned login)."""
    cid = rec.get("context_id")
    if rec.get("type") != "context" or not cid:
        return None
    return (cid, rec.get("station"), rec.get("work_order"), rec.get("operation"), rec.get("lot"),
            _epoch(rec.get("started_at")), _epoch(rec.get("ended_at")))


def _epoch(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    from datetime import datetime

    if isinstance(v, datetime):
        return v.timestamp()
    try:
        return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
