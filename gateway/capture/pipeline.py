"""The capture path: a reading goes through a short chain of stages and into the capture log.

Stages are functions that return new values and never change the reading: the station's scan
rules (scans and RFID reads: outcome, decoded fields, the context change a scan asks for), then
stamping (the record, or for telemetry a line under the device's shared head). Station contexts
live in memory for stamping and in the log's file for restarts; every change is journaled as a
record in the same transaction that stores the new state.

`submit()` never raises and never loses a reading: when a stage after the driver fails (the scan
rules, stamping, encoding — a bug, or data nobody foresaw), the reading is still captured, as a
record with quality `bad`, status `rejected`, reason_code `internal_error` and its raw bytes, and
counted in `internal_errors`. The traceback is logged once per device and exception type.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from gateway.capture.log import Batch, Log
from gateway.capture.record import OPTS, SCHEMA, Origin, context_event, context_fields, encode, encode_all, head, item, stamp, utc
from gateway.config import Config
from gateway.errors import Traced, describe
from gateway.journal.keys import interval, keys
from gateway.model import ALARM, PROTECTED, RFID, SCAN, TELEMETRY, Reading
from gateway.station.context import Change, Context, ContextRefused, Event, apply

log = structlog.get_logger("gateway.capture.pipeline")
# Device kinds whose readings go through the station's scan rules (gateway.station.scan.rules).
TYPES = frozenset({TELEMETRY, SCAN, RFID, ALARM})  # what a driver may produce
Planned = tuple[Context, list[Event]]  # a context change worked out, not yet applied
INTERNAL_ERROR = {"status": "rejected", "reason_code": "internal_error", "message": "internal error in the gateway; the reading is kept"}


class Pipeline:
    def __init__(self, cfg: Config, log: Log, saved: dict[str, dict] | None = None):
        g = cfg.gateway
        self.log = log
        self.contexts: dict[str, Context] = {}
        for s in g.stations:
            state = (saved or {}).get(s.name)
            self.contexts[s.name] = Context.from_json(state) if state else Context(s.name)
        self.read = 0
        self.counts: Counter[tuple[str, str]] = Counter()  # readings per (device, type), telemetry aside
        self.scans: Counter[tuple[str, str]] = Counter()  # scan and RFID outcomes per (device, status)
        self.internal_errors = 0
        self.alarms: dict[tuple[str, str, str], dict[str, Any]] = {}  # raised, not yet cleared: (device, tag, alarm)
        self._traced = Traced()  # stage failures whose traceback is logged, per device
        self.rules: dict[str, Any] = {}
        # Called with every scan, RFID, alarm and context record as it is captured (the station
        # page); a listener must be quick and must not raise.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.reconfigure(cfg)

    def reconfigure(self, cfg: Config) -> None:
        """Take the devices of `cfg` (at start, and on a reload; stations never change while running)."""
        g = cfg.gateway
        self.cfg = cfg
        self.origins = {
            d.name: Origin(g.id, g.site, g.area, g.line, cfg.station_of(d), d.name, d.kind)
            for d in cfg.devices
        }
        # Scan rules: one per station that has scanners or RFID readers; lists load here, once, and a
        # station keeps its rules (and their duplicate memory) across reloads.
        scan_stations = {cfg.station_of(d) for d in cfg.devices if d.scan_rules} - set(self.rules)
        if scan_stations:
            from gateway.station.scan.rules import ScanRules

            self.rules.update({s.name: ScanRules(s.scan) for s in g.stations if s.name in scan_stations})

    def submit(self, origin: Origin, r: Reading) -> tuple[int, dict[str, Any] | None]:
        """Stamp and queue one reading; return (commit ticket for `committed()`, outcome for the
        device's feedback)."""
        self.read += 1
        try:
            ctx = self.contexts[origin.station]
            if r.type is TELEMETRY:  # the common case: a line under the device's shared head
                return self._telemetry(origin, r, ctx), None
            self.counts[origin.device, r.type] += 1
            outcome = planned = fields = None
            if r.type in (SCAN, RFID):
                outcome, fields, planned = self._scan_outcome(origin, r, ctx)
                self.scans[origin.device, outcome["status"]] += 1
                if planned is not None:
                    ctx = planned[0]
            elif r.type == ALARM:
                self._track_alarm(origin, r)
            now = time.time()
            rec = stamp(r, origin, ctx, now, outcome, fields)
            data = encode(rec)
            # The context change a scan asks for takes effect only once its record exists: a scan whose
            # record could not be built is rejected, and then it changed nothing.
            if planned is not None:
                self._journal(origin.station, *planned)
            self._tell(rec)
            return self._whole(origin.station, origin.device, rec, data, now, urgent=r.ack is not None), outcome
        except Exception as exc:  # noqa: BLE001 - the capture path's containment boundary (module doc)
            return self._salvage(origin, r, exc)

    def submit_many(self, origin: Origin, rs: list[Reading]) -> int:
        """Stamp and queue the readings of one poll; return the commit ticket. Telemetry under one
        context shares one head and one row; anything else, or a failure, goes reading by reading."""
        if not all(r.type is TELEMETRY for r in rs):
            return max(self.submit(origin, r)[0] for r in rs)
        try:
            ctx = self.contexts[origin.station]
            items = []
            last_ts = stamp_ts = None
            for r in rs:
                it = item(r, stamp_ts if r.ts == last_ts else None)
                last_ts, stamp_ts = r.ts, it["ts"]
                items.append(it)
            lines = encode_all(items)
            points = [(r.tag, r.value, r.unit, r.quality == "good") for r in rs]
            self.read += len(rs)
            return self.log.extend((origin.device, ctx.context_id, ctx.version), self._maker(origin, ctx), lines, points)
        except Exception:  # noqa: BLE001 - handed to submit(), each reading in its own containment
            return max(self.submit(origin, r)[0] for r in rs)

    async def committed(self, ticket: int) -> None:
        """Return once the record of `ticket` is captured (committed)."""
        await self.log.committed(ticket)

    def _telemetry(self, origin: Origin, r: Reading, ctx: Context) -> int:
        line = encode(item(r))
        point = (r.tag, r.value, r.unit, r.quality == "good")
        return self.log.put((origin.device, ctx.context_id, ctx.version), self._maker(origin, ctx), line, point)

    @staticmethod
    def _maker(origin: Origin, ctx: Context) -> Callable[[], Batch]:
        def make() -> Batch:
            now = time.time()
            h = encode(head(TELEMETRY, origin, ctx, now))
            return Batch(TELEMETRY, origin.station, origin.device, ctx.context_id, False, h, [], now, len(h), [])

        return make

    def _whole(self, station: str, device: str, rec: dict[str, Any], data: bytes, now: float, urgent: bool = False) -> int:
        """Queue a record kept whole (a scan, an alarm, a context event): its own row, indexed."""
        t = rec["type"]

        def make() -> Batch:
            return Batch(t, station, device, rec.get("context_id"), t in PROTECTED, data, [], now, len(data),
                         None, keys(rec) if t in PROTECTED else None, interval(rec, now))

        return self.log.put(None, make, b"{}", None, urgent)

    def _tell(self, rec: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(rec)

    def type_counts(self, device: str, readings: int) -> dict[str, int]:
        """Readings of one device per type: `readings` (the supervisor's count) less the other types."""
        out = {t: n for (d, t), n in self.counts.items() if d == device}
        if readings - sum(out.values()) > 0:
            out[TELEMETRY] = readings - sum(out.values())
        return out

    def _track_alarm(self, origin: Origin, r: Reading) -> None:
        f = r.fields or {}
        key = (origin.device, r.tag, str(f.get("alarm")))
        if f.get("state") == "raised":
            self.alarms[key] = {"device": origin.device, "station": origin.station, "tag": r.tag, "alarm": f.get("alarm"),
                                "severity": f.get("severity"), "limit": f.get("limit"), "value": r.value, "since": r.ts}
        else:
            self.alarms.pop(key, None)

    def _salvage(self, origin: Origin, r: Reading, exc: Exception) -> tuple[int, dict[str, Any]]:
        """Capture a reading whose stages failed, from parts that cannot fail themselves."""
        self.internal_errors += 1
        if self._traced.first(exc, origin.device):
            log.error("stage_failed", device=origin.device, tag=str(r.tag)[:128], error=describe(exc), exc_info=exc)
        type_ = r.type if r.type in TYPES else TELEMETRY
        now = time.time()
        ts = r.ts if isinstance(r.ts, (int, float)) and 0 < r.ts < 32503680000 else now
        rec: dict[str, Any] = {
            "gateway_id": origin.gateway_id,
            "schema": SCHEMA,
            "type": type_,
            "ts": utc(ts),
            "ingested_at": utc(now),
            "site": origin.site,
            "area": origin.area,
            "line": origin.line,
            "station": origin.station,
            "device": origin.device,
            "device_kind": origin.device_kind,
            "tag": str(r.tag)[:128],
            "value": None,
            "unit": None,
            "quality": "bad",
            "reason": f"internal_error: {describe(exc)}",
            **context_fields(self.contexts[origin.station]),
            **INTERNAL_ERROR,
        }
        if isinstance(r.raw, (bytes, bytearray)):
            rec["raw"] = base64.b64encode(r.raw).decode()
        # orjson directly, not encode(): the failing stage may be the encoder itself.
        if type_ in (SCAN, RFID):
            self.scans[origin.device, "rejected"] += 1
        data = orjson.dumps(rec, option=OPTS)
        t = rec["type"]
        ticket = self.log.put(None, lambda: Batch(t, origin.station, origin.device, rec["context_id"], t in PROTECTED, data, [], now, len(data)),
                              b"{}", None, urgent=r.ack is not None)
        return ticket, dict(INTERNAL_ERROR)

    def _scan_outcome(self, origin: Origin, r: Reading, ctx: Context) -> tuple[dict[str, Any], dict[str, Any] | None, Planned | None]:
        """The scan-rules stage: judge a scan or RFID read; return its outcome, its decoded fields
        and the context change it asks for, planned but not applied (the record is stamped with the
        context after it)."""
        rules = self.rules.get(origin.station)
        if rules is None:  # a scan from a device kind the rules do not know (e.g. a synthetic one)
            return {"status": "accepted" if ctx.active else "unassigned", "reason_code": None if ctx.active else "no_active_order"}, None, None
        v = rules.evaluate(r, ctx, time.time())
        status, code, message = v.status, v.reason_code, v.message
        planned = None
        if v.change is not None:
            try:
                planned = apply(ctx, v.change.by(f"scan:{origin.device}"), time.time())
            except ContextRefused as exc:
                status, code, message = "rejected", exc.code, str(exc)
        return {"status": status, "reason_code": code, "message": message}, v.fields, planned

    def change(self, station: str, ch: Change) -> tuple[int, Context]:
        """Apply a context change; journal it; return (commit ticket, new context).

        Raises ContextRefused (nothing changes) or KeyError for an unknown station.
        """
        new, events = apply(self.contexts[station], ch, time.time())
        return self._journal(station, new, events), new

    def _journal(self, station: str, new: Context, events: list[Event]) -> int:
        """Make `new` the station's context, stored with the events that journal the change."""
        now = time.time()
        self.contexts[station] = new
        g = self.cfg.gateway
        origin = Origin(g.id, g.site, g.area, g.line, station, "", "")
        ticket = self.log.set_context(station, new.to_json())
        for ev in events:
            rec = context_event(ev, origin, now)
            ticket = self._whole(station, "", rec, encode(rec), now)
            self._tell(rec)
            log.info("context_changed", station=station, change=ev.event, source=ev.source, actor=ev.actor, work_order=ev.context.work_order,
                     operation=ev.context.operation, lot=ev.context.lot, operators=list(ev.context.operators),
                     context_id=ev.context.context_id, version=ev.context.version)
        return ticket


__all__ = ["Pipeline", "ContextRefused", "Change"]
