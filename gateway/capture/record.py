"""Stamping: `Reading + Context -> record` (design.md §5), a pure function, and record encoding.

A record carries a snapshot of the station context (its id and version), so a later change of
context never rewrites history. Records are stored encoded; `seq` is added by the publisher from
the outbox row id (see gateway.capture.outbox), so the stored payload is the JSON object without its `{`.
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
    prefix: str

    def topic(self, type_: str) -> str:
        return f"{self.prefix}/{self.site}/{self.area}/{self.line}/{self.station}/{self.device}/{type_}"


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


def stamp(r: Reading, o: Origin, ctx: Context, now: float, outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "gateway_id": o.gateway_id,
        "schema": SCHEMA,
        "type": r.type,
        "ts": utc(r.ts),
        "ingested_at": utc(now),
        "site": o.site,
        "area": o.area,
        "line": o.line,
        "station": o.station,
        "device": o.device,
        "device_kind": o.device_kind,
        "tag": r.tag,
        "value": r.value,
        "unit": r.unit,
        "quality": r.quality,
        "reason": r.reason,
        **context_fields(ctx),
    }
    if r.raw is not None:
        rec["raw"] = base64.b64encode(r.raw).decode()
    if r.fields:
        for k, v in r.fields.items():
            rec.setdefault(k, v)
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


def encode(rec: dict[str, Any]) -> bytes:
    """Encode for the outbox: JSON without the opening brace. Values JSON cannot hold become text."""
    try:
        data = orjson.dumps(rec, option=OPTS)
    except TypeError:
        rec = {**rec, "value": repr(rec.get("value")), "quality": "bad", "reason": f"value of type {type(rec.get('value')).__name__} is not JSON; kept as text"}
        data = orjson.dumps(rec, option=OPTS, default=repr)
    return data[1:]


def with_seq(seq: int, stored: bytes) -> bytes:
    """The published JSON object: `seq` first, then the stored record."""
    return b'{"seq":%d,%s' % (seq, stored)
