"""The capture path: a reading is stamped with its station's context and queued in the outbox.

Station contexts live in memory for stamping and in the outbox file for restarts; every change is
journaled as a record in the same transaction that stores the new state.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from gateway.config import Config
from gateway.context import Change, Context, ContextRefused, apply
from gateway.model import CONTEXT, PROTECTED, RFID, SCAN, Reading
from gateway.outbox import Outbox
from gateway.record import Origin, context_event, encode, stamp

log = structlog.get_logger("gateway.pipeline")
# Device kinds whose readings go through the station's scan rules (gateway.scan.rules).
SCAN_KINDS = frozenset({"scanner_serial", "scanner_evdev", "rfid_serial"})


class Pipeline:
    def __init__(self, cfg: Config, outbox: Outbox, saved: dict[str, dict] | None = None):
        g = cfg.gateway
        self.cfg = cfg
        self.outbox = outbox
        self.origins = {
            d.name: Origin(g.id, g.site, g.area, g.line, cfg.station_of(d), d.name, d.kind, cfg.mqtt.topic_prefix)
            for d in cfg.devices
        }
        self.contexts: dict[str, Context] = {}
        for s in g.stations:
            state = (saved or {}).get(s.name)
            self.contexts[s.name] = Context.from_json(state) if state else Context(s.name)
        self.read = 0
        # --- scan rules (issue 5): one per station that has scanners or RFID readers; lists load here, at start.
        self.rules: dict[str, Any] = {}
        scan_stations = {cfg.station_of(d) for d in cfg.devices if d.kind in SCAN_KINDS}
        if scan_stations:
            from gateway.scan.rules import ScanRules

            self.rules = {s.name: ScanRules(s.scan) for s in g.stations if s.name in scan_stations}
        # --- end scan rules

    def station_topic(self, station: str) -> str:
        g = self.cfg.gateway
        return f"{self.cfg.mqtt.topic_prefix}/{g.site}/{g.area}/{g.line}/{station}/context"

    def submit(self, origin: Origin, r: Reading) -> tuple[int, dict[str, Any] | None]:
        """Stamp and queue one reading; return (commit ticket, outcome for the device's feedback)."""
        self.read += 1
        outcome = None
        if r.type in (SCAN, RFID):
            outcome = self._scan_outcome(origin, r)
        ctx = self.contexts[origin.station]
        rec = stamp(r, origin, ctx, time.time(), outcome)
        return self.outbox.put(origin.topic(r.type), encode(rec), r.type in PROTECTED, urgent=r.ack is not None), outcome

    # --- scan rules (issue 5) ---------------------------------------------------------------------
    def _scan_outcome(self, origin: Origin, r: Reading) -> dict[str, Any]:
        """Judge a scan or RFID read with the station's rules; apply the context change it asks for
        first, so the record is stamped with the context after it. Replaces `r.fields` with the
        decoded fields."""
        rules = self.rules.get(origin.station)
        ctx = self.contexts[origin.station]
        if rules is None:  # a scan from a device kind the rules do not know (e.g. a synthetic one)
            return {"status": "accepted" if ctx.active else "unassigned", "reason_code": None if ctx.active else "no_active_order"}
        v = rules.evaluate(r, ctx, time.time())
        status, code, message = v.status, v.reason_code, v.message
        if v.change is not None:
            try:
                self.change(origin.station, v.change.by(f"scan:{origin.device}"))
            except ContextRefused as exc:
                status, code, message = "rejected", exc.code, str(exc)
        r.fields = v.fields
        return {"status": status, "reason_code": code, "message": message}

    # --- end scan rules ---------------------------------------------------------------------------

    def change(self, station: str, ch: Change) -> tuple[int, Context]:
        """Apply a context change; journal it; return (commit ticket, new context).

        Raises ContextRefused (nothing changes) or KeyError for an unknown station.
        """
        cur = self.contexts[station]
        now = time.time()
        new, events = apply(cur, ch, now)
        self.contexts[station] = new
        g = self.cfg.gateway
        origin = Origin(g.id, g.site, g.area, g.line, station, "", "", self.cfg.mqtt.topic_prefix)
        ticket = self.outbox.set_context(station, new.to_json())
        for ev in events:
            ticket = self.outbox.put(self.station_topic(station), encode(context_event(ev, origin, now)), CONTEXT in PROTECTED)
            log.info("context_changed", station=station, change=ev.event, source=ev.source, actor=ev.actor, work_order=ev.context.work_order,
                     operation=ev.context.operation, lot=ev.context.lot, operators=list(ev.context.operators),
                     context_id=ev.context.context_id, version=ev.context.version)
        return ticket, new


__all__ = ["Pipeline", "ContextRefused", "Change"]
