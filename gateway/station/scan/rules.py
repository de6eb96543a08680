"""Station rules: what a scan means for the station and whether it is acceptable.

`ScanRules.evaluate(reading, ctx, now)` returns a `Verdict`: the status (accepted, rejected, warning,
unassigned, duplicate), a reason code, a human message, the context change the scan asks for, and the
decoded fields for the record. The caller applies the change through `gateway.station.context.apply`; a
`ContextRefused` there turns the scan into `rejected` with the refusal's code.

Invariants:
- No I/O in `evaluate`: the bill of materials and blocked lots are loaded when the rules are built,
  or arrive with the context from the MES (`ctx.extra["bom"]`, `ctx.extra["blocked_lots"]`), which
  take precedence for the BOM and add to the blocked list.
- Without an active work order a material scan is `unassigned`, never attached to the last order.
- Duplicates are keyed on (work order, what the label says: its AIs, whatever the symbology, AI
  order or form) with a TTL, and only accepted scans arm the key: a changeover never swallows a
  real scan, and a rejected scan scanned again is judged again.
- An empty scan (a terminator alone, an AIM identifier with nothing after it) is rejected, with or
  without an active work order.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway.model import RFID, Reading
from gateway.station.context import Change, Context
from gateway.station.scan.config import ScanSettings
from gateway.station.scan.decode import SOFT, Decoder, identity, text_of
from gateway.station.scan.lists import blocked_key, load_blocked, load_bom, norm_item

Status = Literal["accepted", "rejected", "warning", "unassigned", "duplicate"]
MATERIAL = frozenset({"gs1", "gtin", "sscc", "epc"})


@dataclass(slots=True)
class Verdict:
    status: Status
    reason_code: str
    message: str
    change: Change | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class ScanRules:
    def __init__(self, settings: ScanSettings | None = None):
        self.settings = s = settings or ScanSettings()
        self.decoder = Decoder(s)
        self.bom = load_bom(s.bom_file) if s.bom_file else {}
        self.blocked = load_blocked(s.blocked_lots_file) if s.blocked_lots_file else frozenset()
        self._ttl = s.duplicate_ttl
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def evaluate(self, reading: Reading, ctx: Context, now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        fields = reading.fields or {}
        text = reading.value if isinstance(reading.value, str) else text_of(reading.raw or b"")
        f = self.decoder.fields(text, fields.get("hint"))
        f.update({k: v for k, v in fields.items() if k != "hint"})
        if reading.quality == "bad":
            return Verdict("rejected", "garbled", reading.reason or "the scan arrived garbled", None, f)
        if "empty_scan" in f["error_codes"] or "aim_malformed" in f["error_codes"]:
            return Verdict("rejected", f["error_codes"][0], "; ".join(f["errors"]), None, f)
        kind = f["kind"]
        if kind == "work_order":
            wo = f["scan_work_order"]
            ch = Change("start", "scan", work_order=wo, operation=f["scan_operation"], reason="traveler scanned")
            same = ctx.active and ctx.work_order == wo
            return Verdict("accepted", "work_order_active" if same else "work_order_started", f"work order {wo}", ch, f)
        if kind == "badge":
            badge = f["badge"]
            if badge in ctx.operators:
                return Verdict("accepted", "operator_logout", f"operator {badge} logged out", Change("logout", "scan", operators=(badge,), reason="badge scanned"), f)
            return Verdict("accepted", "operator_login", f"operator {badge} logged in", Change("login", "scan", operators=(badge,), reason="badge scanned"), f)
        if kind == "command":
            return self._command(f, ctx)
        if not ctx.active:
            return Verdict("unassigned", "no_active_order", "no active work order at this station: scan a traveler first", None, f)
        if kind == "lot":
            lot = f["scan_lot"]
            return Verdict("accepted", "lot_set", f"lot {lot}", Change("update", "scan", lot=lot, reason="lot label scanned"), f)
        hard = [c for c in f["error_codes"] if c not in SOFT]
        if hard:
            return Verdict("rejected", hard[0], "; ".join(f["errors"]), None, f)
        if kind not in MATERIAL:
            return Verdict(self.settings.unknown, "unknown_code", f"not a code this station knows: {f['text']!r}", None, f)
        # An RFID read window already folds repeats; its summary must not count as a duplicate of its first sight.
        return self._material(f, ctx, reading.ts, now, dedupe=reading.type != RFID)

    def _command(self, f: dict, ctx: Context) -> Verdict:
        if f["command"] == "end":
            if not ctx.active:
                return Verdict("rejected", "no_active_order", "no active work order to end", None, f)
            return Verdict("accepted", "work_order_ended", f"work order {ctx.work_order} ended", Change("end", "scan", reason="end-order barcode"), f)
        if not ctx.operators:
            return Verdict("accepted", "no_operators", "nobody was logged in", None, f)
        return Verdict("accepted", "operators_logout", "all operators logged out", Change("logout", "scan", operators=ctx.operators, reason="logout barcode"), f)

    def _material(self, f: dict, ctx: Context, ts: float, now: float, dedupe: bool) -> Verdict:
        wo = ctx.work_order or ""
        key = (wo, identity(f))
        dedupe = dedupe and self._ttl > 0
        if dedupe:
            self._prune(now)
            last = self._seen.get(key)
            if last is not None and now - last < self._ttl:
                return Verdict("duplicate", "duplicate", f"scanned already {now - last:.0f} s ago in work order {wo}", None, f)
        item = norm_item(f["gtin"]) if f.get("gtin") else (f.get("sscc") or f["text"])
        if f["kind"] != "sscc":
            bom = ctx.extra.get("bom")
            allowed = frozenset(norm_item(c) for c in bom) if bom is not None else self.bom.get(wo)
            if allowed is None and self.settings.require_bom:
                return Verdict("rejected", "bom_unknown", f"no bill of materials for work order {wo}", None, f)
            if allowed is not None and item not in allowed:
                return Verdict("rejected", "not_in_bom", f"{item} is not in the bill of materials of {wo}", None, f)
        lot = f.get("batch_lot")
        if lot:
            extra = ctx.extra.get("blocked_lots") or ()
            keys = (lot, f"{item},{lot}")
            if any(k in self.blocked for k in keys) or any(blocked_key(str(e)) in keys for e in extra):
                return Verdict("rejected", "lot_blocked", f"lot {lot} is blocked", None, f)
        status, reason, message = "accepted", "ok", "material accepted"
        expiry = f.get("expiry")
        if expiry:
            day = datetime.fromtimestamp(ts, UTC).date()
            if expiry < day.isoformat():
                return Verdict("rejected", "expired", f"expired on {expiry}", None, f)
            warn = self.settings.expiry_warn_days
            if warn and expiry <= (day + timedelta(days=warn)).isoformat():
                status, reason, message = "warning", "expires_soon", f"expires on {expiry}"
        soft = [c for c in f["error_codes"] if c in SOFT]
        if soft and status == "accepted":
            status, reason, message = "warning", soft[0], "; ".join(f["errors"])
        if dedupe:
            self._seen[key] = now
            self._seen.move_to_end(key)
        return Verdict(status, reason, message, None, f)

    def _prune(self, now: float) -> None:
        seen = self._seen
        while seen:
            k, t = next(iter(seen.items()))
            if now - t < self._ttl:
                break
            del seen[k]
