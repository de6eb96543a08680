"""Records as Sparkplug metric values: which device, which metric, which datatype, which properties.

- Telemetry of a gateway device is a metric of the Sparkplug device of the same name, named by its tag.
- A station's scans, RFID reads, alarms and context events are metrics of the station's own device
  (`station_device`), in folders: `Scans/<device>/<tag>`, `RFID/<device>/<tag>`,
  `Alarms/<device>/<tag>/<alarm>` and `Context/<field>`. Plain metrics rather than templates: every
  host reads them, and a scan's or an alarm's details travel as properties of its value.
- Every value carries its record's properties: `Quality` (Int32: good 192, bad 0, uncertain 500 —
  Sparkplug 3.0 allows only these three; 500, "stale", is the nearest to a value that is usable
  but not vouched for, and the gateway never sends a stale value otherwise), `engUnit`,
  `work_order`, `lot`, `context_id`, and `reason` when the record gives one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gateway.model import ALARM, CONTEXT, RFID, SCAN, TELEMETRY

# Datatypes of the proto enum (sparkplug_b.proto DataType).
UNKNOWN, INT32, INT64, UINT64, DOUBLE, BOOLEAN, STRING = 0, 3, 4, 8, 10, 11, 12

QUALITY = {"good": 192, "bad": 0, "uncertain": 500}
CONTEXT_FIELDS = (("State", "state"), ("Event", "event"), ("Work Order", "work_order"), ("Operation", "operation"), ("Lot", "lot"), ("Operators", "operators"), ("ID", "context_id"))
FOLDER = {SCAN: "Scans", RFID: "RFID"}


@dataclass(slots=True)
class Point:
    """One value of one metric, from one record: what a data message carries."""

    seq: int  # the record's seq in the capture log
    name: str
    datatype: int
    value: Any  # None: a null value (is_null)
    ts: int  # ms since the epoch, UTC
    props: dict[str, tuple[int, Any]]  # property key -> (datatype, value); value None: null


def datatype(value: Any) -> int | None:
    """The Sparkplug datatype of a record value; None for a null value (the metric's own type holds)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INT64 if value < 1 << 63 else UINT64
    if isinstance(value, float):
        return DOUBLE
    return STRING


def plain(value: Any, dt: int) -> Any:
    """The value as the metric's datatype holds it: lists and objects as their JSON text."""
    if value is None or dt != STRING or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


_LAST_TS = ["", 0]  # a one-entry cache: the records of a poll share their ts


def millis(iso: str) -> int:
    if iso != _LAST_TS[0]:
        _LAST_TS[:] = iso, round(datetime.fromisoformat(iso).timestamp() * 1000)
    return _LAST_TS[1]


def context_props(rec: dict[str, Any]) -> dict[str, tuple[int, Any]]:
    return {"work_order": (STRING, rec.get("work_order")), "lot": (STRING, rec.get("lot")), "context_id": (STRING, rec.get("context_id"))}


def points(seq: int, rec: dict[str, Any]) -> list[Point]:
    """The metric values of one record (one, or one per context field for a context event)."""
    kind = rec.get("type", TELEMETRY)
    ts = millis(rec["ts"])
    if kind == CONTEXT:
        return [_context(seq, rec, ts, name, key) for name, key in CONTEXT_FIELDS]
    props = _props(rec.get("quality"), rec.get("unit"), rec.get("reason"), rec.get("work_order"), rec.get("lot"), rec.get("context_id"))
    value = rec.get("value")
    if kind == ALARM:
        name = f"Alarms/{rec['device']}/{rec['tag']}/{rec.get('alarm')}"
        props = dict(props)
        props["value"] = (DOUBLE, float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else (STRING, plain(value, STRING))
        for key in ("severity", "limit"):
            if rec.get(key) is not None:
                props[key] = (STRING, str(rec[key]))
        return [Point(seq, name, BOOLEAN, rec.get("state") == "raised", ts, props)]
    if kind in FOLDER:
        props = dict(props)
        props["status"] = (STRING, rec.get("status"))
        props["reason_code"] = (STRING, rec.get("reason_code"))
        name = f"{FOLDER[kind]}/{rec['device']}/{rec['tag']}"
        return [Point(seq, name, STRING, plain(value, STRING), ts, props)]
    dt = datatype(value)  # None: a null value, of the type the metric has (UNKNOWN until it has one)
    return [Point(seq, str(rec["tag"]), dt or UNKNOWN, plain(value, dt) if dt else None, ts, props)]


_PROPS: dict[tuple, dict[str, tuple[int, Any]]] = {}


def _props(quality: Any, unit: Any, reason: Any, work_order: Any, lot: Any, context_id: Any) -> dict[str, tuple[int, Any]]:
    """The properties of a value; one shared dict per combination (values of a poll have the same),
    which callers copy before they add to it."""
    key = (quality, unit, reason, work_order, lot, context_id)
    props = _PROPS.get(key)
    if props is None:
        if len(_PROPS) > 4096:
            _PROPS.clear()
        props = _PROPS[key] = {"Quality": (INT32, QUALITY.get(quality, 0)), "work_order": (STRING, work_order), "lot": (STRING, lot), "context_id": (STRING, context_id)}
        if unit is not None:
            props["engUnit"] = (STRING, unit)
        if reason is not None:
            props["reason"] = (STRING, str(reason))
    return props


def _context(seq: int, rec: dict[str, Any], ts: int, name: str, key: str) -> Point:
    value = rec.get(key)
    if isinstance(value, list):
        value = ",".join(value)
    props = context_props(rec)
    if rec.get("source") is not None:
        props["source"] = (STRING, rec["source"])
    return Point(seq, f"Context/{name}", STRING, value, ts, props)
