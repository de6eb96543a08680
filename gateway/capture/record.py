"""Stamping: `Reading + Context -> record`, pure functions, and record encoding.

A record carries a snapshot of the station context (its id and version), so a later change of
context never rewrites history. Telemetry is stored split (gateway.northbound.sink.Chunk): the
fields every reading of a device shares under one context (`head`) once per chunk, and per reading
only its own (`item`). Scans, alarms and context events are whole records in the head. `seq` is
given by the capture log at commit; each sink puts it into its own encoding.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.model import CONTEXT, Reading
from gateway.station.context import Context, Event

SCHEMA = 1
OPTS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a reading comes from: fixed per device, computed once."""

    gateway_id: str
    site: str
    area: str
    line: str
    station: str
    device: str
    device_kind: str


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def context_fields(ctx: Context) -> dict[str, Any]:
    if not ctx.active:
        return {
            "context": "unassigned",
            "context_id": None,
            "context_version": ctx.version,
            "work_order": None,
            "operation": None,
            "lot": None,
            "operators": list(ctx.operators),
        }
    return {
        "context": "active",
        "context_id": ctx.context_id,
        "context_version": ctx.version,
        "work_order": ctx.work_order,
        "operation": ctx.operation,
        "lot": ctx.lot,
        "operators": list(ctx.operators),
    }


def stamp(r: Reading, o: Origin, ctx: Context, now: float, outcome: dict[str, Any] | None = None, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole record of one reading (`fields`: its decoded fields, instead of the reading's own)."""
    rec = {**head(r.type, o, ctx, now), **item(r, fields=fields)}
    if outcome:
        rec.update(outcome)
    return rec


def context_event(ev: Event, o: Origin, now: float) -> dict[str, Any]:
    """The journal record of one context change (published on `<station>/context`)."""
    c = ev.context
    return {
        "gateway_id": o.gateway_id,
        "schema": SCHEMA,
        "type": CONTEXT,
        "ts": utc(now),
        "ingested_at": utc(now),
        "site": o.site,
        "area": o.area,
        "line": o.line,
        "station": c.station,
        "event": ev.event,
        "source": ev.source,
        "actor": ev.actor,
        "reason": ev.reason,
        "state": c.state,
        "context": "active" if c.active else "unassigned",
        "context_id": c.context_id,
        "context_version": c.version,
        "work_order": c.work_order,
        "operation": c.operation,
        "lot": c.lot,
        "operators": list(c.operators),
        "started_at": utc(c.started_at) if c.started_at else None,
        "ended_at": utc(c.ended_at) if c.ended_at else None,
    }


def head(r_type: str, o: Origin, ctx: Context, now: float) -> dict[str, Any]:
    """The fields the readings of one device share under one context."""
    return {
        "gateway_id": o.gateway_id,
        "schema": SCHEMA,
        "type": r_type,
        "ingested_at": utc(now),
        "site": o.site,
        "area": o.area,
        "line": o.line,
        "station": o.station,
        "device": o.device,
        "device_kind": o.device_kind,
        **context_fields(ctx),
    }


HEAD_FIELDS = frozenset(head("telemetry", Origin("", "", "", "", "", "", ""), Context("x"), 0.0))


def item(r: Reading, ts: datetime | None = None, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of one reading alone; its `fields` (or `fields` given) never override the head's
    or its own. `ts`: the reading's time, already converted (the readings of a poll share it)."""
    it: dict[str, Any] = {"tag": r.tag, "value": r.value, "unit": r.unit, "quality": r.quality, "reason": r.reason, "ts": ts or utc(r.ts)}
    if r.raw is not None:
        it["raw"] = base64.b64encode(r.raw).decode()
    extra = fields if fields is not None else r.fields
    if extra:
        for k, v in extra.items():
            if k not in HEAD_FIELDS:
                it.setdefault(k, v)
    return it


def encode(rec: dict[str, Any]) -> bytes:
    """A record (or an item) as JSON. Values JSON cannot hold become text, and the record says so."""
    try:
        return orjson.dumps(rec, option=OPTS)
    except TypeError:
        rec = {**rec, "value": repr(rec.get("value")), "quality": "bad", "reason": f"value of type {type(rec.get('value')).__name__} is not JSON; kept as text"}
        return orjson.dumps(rec, option=OPTS, default=repr)


def encode_all(items: list[dict[str, Any]]) -> list[bytes]:
    """`encode` of each item, from one orjson call for all of them when it can: the array splits
    at its `},{` exactly when no value holds that text (JSON text never holds a raw newline)."""
    try:
        text = orjson.dumps(items, option=OPTS)
    except TypeError:
        return [encode(it) for it in items]
    if text.count(b"},{") != len(items) - 1 or not items:
        return [encode(it) for it in items]
    return text[1:-1].replace(b"},{", b"}\n{").split(b"\n")


def wire(seq: int, head: bytes, line: bytes) -> bytes:
    """The whole record as one JSON object, `seq` first: the JSON sink's encoding."""
    if line == b"{}":
        return b'{"seq":%d,%s' % (seq, head[1:])
    return b'{"seq":%d,%s,%s' % (seq, line[1:-1], head[1:])
