"""Classify and decode one scan: AIM identifier → configured patterns → GS1 (biip) → EPC → unknown.

`Decoder.decode` is pure and cached: the same text always gives the same fields (nothing here depends
on the clock; expiry against the capture time is a rule, not a decoding step). Every result carries
the same keys, so a consumer never has to guess.
"""

from __future__ import annotations

import re
from functools import lru_cache

from gateway.kit.text import text_of
from gateway.station.scan import aim as aimmod
from gateway.station.scan import epc, gs1
from gateway.station.scan.config import Patterns, ScanSettings
from gateway.station.scan.gs1check import digits

KEYS = ("kind", "symbology", "aim", "text", "gtin", "batch_lot", "serial", "expiry", "sscc", "count", "order_number",
        "epc_uri", "epc_filter", "scan_work_order", "scan_operation", "badge", "scan_lot", "command")
# `scan_work_order`, `scan_operation` and `scan_lot` hold what a traveler or lot label says; the
# record's `work_order`/`operation`/`lot` are the station context's (after the scan took effect).
CACHE = 8192
# Soft problems: the value is usable, the operator is warned.
SOFT = frozenset({"missing_gs", "separator_substituted"})
_EPC_HEX = re.compile(r"[0-9A-Fa-f]{24,}")
CACHED = 512  # longer texts are decoded without the cache: a flood of garbage must not fill memory


def normalize_badge(value: str) -> str:
    """One form for badge ids: 10-digit decimal (what is printed on 125 kHz cards).
    8 hex digits (a serial reader's id) or 10 hex digits (version + id) are converted."""
    v = value.strip()
    if digits(v):
        return v.zfill(10) if len(v) <= 10 else v
    if re.fullmatch(r"[0-9A-Fa-f]{8}|[0-9A-Fa-f]{10}", v):
        return f"{int(v[-8:], 16):010d}"
    return v


class Decoder:
    def __init__(self, settings: ScanSettings | None = None):
        s = settings or ScanSettings()
        p: Patterns = s.patterns
        # ASCII: a configured `\d` must not take `٣` or `¹` for a digit.
        self._rules = [(kind, re.compile(rx, re.ASCII)) for kind, rx in (("work_order", p.work_order), ("badge", p.badge), ("lot", p.lot)) if rx]
        self._commands = dict(p.commands)
        self._seps = tuple(s.separators)
        self._auto = s.auto_separator
        self.decode = lru_cache(maxsize=CACHE)(self._decode)

    def fields(self, text: str, hint: str | None = None) -> dict:
        """A fresh copy of the decoded fields (callers may add to it)."""
        d = self.decode(text, hint) if len(text) <= CACHED else self._decode(text, hint)
        return {**d, "errors": list(d["errors"]), "error_codes": list(d["error_codes"])}

    def _decode(self, text: str, hint: str | None = None) -> dict:
        out = dict.fromkeys(KEYS)
        out["errors"], out["error_codes"] = [], []
        aim, body = aimmod.split(text)
        sym = aimmod.name(aim)
        out["aim"], out["symbology"], out["text"] = aim, sym, body
        why = aimmod.malformed(text)
        if why or not body.strip():
            out["kind"] = "unknown"
            code = "aim_malformed" if why else "empty_scan"
            out["errors"].append(why or (f"empty scan: nothing after the AIM identifier {aim}" if aim else "empty scan"))
            out["error_codes"].append(code)
            return out
        tried_epc = hint == "epc" or (hint is None and aim is None and _EPC_HEX.fullmatch(body) is not None and body[:2] in ("30", "31"))
        if tried_epc and (self._epc(out, body) or hint == "epc"):
            return out
        if hint == "badge":
            out["kind"], out["badge"] = "badge", normalize_badge(body)
            return out
        if sym not in aimmod.GS1_MESSAGE and sym not in aimmod.GTIN and self._configured(out, body.strip()):
            return out
        g = gs1.decode(body, aim_is_gs1=sym in aimmod.GS1_MESSAGE, separators=self._seps, auto_separator=self._auto)
        if g["kind"]:
            out.update({k: v for k, v in g.items() if k in out or k in ("ai", "digital_link")})
            out.update({k: v for k, v in g.items() if k not in out})
            return out
        if aim is None and not tried_epc and _EPC_HEX.fullmatch(body) and self._epc(out, body):
            return out
        out["kind"] = "unknown"
        out["errors"] += g["errors"]  # never dropped, even when the text turned out not to be GS1
        out["error_codes"] += g["error_codes"]
        return out

    def _configured(self, out: dict, body: str) -> bool:
        action = self._commands.get(body)
        if action:
            out["kind"], out["command"] = "command", action
            return True
        for kind, rx in self._rules:
            m = rx.fullmatch(body)
            if m is None:
                continue
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            out["kind"] = kind
            if kind == "work_order":
                out["scan_work_order"] = groups.get("work_order", body)
                out["scan_operation"] = groups.get("operation")
            elif kind == "badge":
                out["badge"] = normalize_badge(groups.get("badge", body))
            else:
                out["scan_lot"] = groups.get("lot", body)
            return True
        return False

    @staticmethod
    def _epc(out: dict, body: str) -> bool:
        e = epc.decode(body)
        out["epc_hex"] = e["epc_hex"]
        if e["errors"] and "epc_scheme" not in e:
            out["kind"] = "unknown"
            out["errors"] += e["errors"]
            out["error_codes"] += e["error_codes"]
            return False
        out["kind"] = "epc"
        for k in ("epc_uri", "epc_filter", "epc_scheme", "gtin", "sscc", "serial"):
            if k in e:
                out[k] = e[k]
        out["errors"] += e["errors"]
        out["error_codes"] += e["error_codes"]
        return True


def identity(f: dict) -> str:
    """What a label says, whatever its symbology, AI order or form (element string, Digital Link,
    bare GTIN): the key for duplicates."""
    ai = f.get("ai")
    if ai:
        return "".join(f"({k}){v}" for k, v in sorted(ai.items()))
    if f["kind"] == "gtin" and f.get("gtin"):
        return f"(01){gs1.gtin14(f['gtin'])}"
    if f["kind"] == "epc":
        return f.get("epc_uri") or f"epc:{f.get('epc_hex')}"
    return f["text"] or ""


_default: Decoder | None = None


def decode(value: str | bytes, settings: ScanSettings | None = None, hint: str | None = None) -> dict:
    """The record fields a scan of `value` would produce (for `shopfloor-gateway decode`)."""
    global _default
    if settings is None:
        _default = _default or Decoder()
        dec = _default
    else:
        dec = Decoder(settings)
    raw = value if isinstance(value, bytes) else value.encode("cp1252", errors="replace")
    text = text_of(raw) if isinstance(value, bytes) else value
    out = dec.fields(text.rstrip("\r\n"), hint)
    out["raw_hex"] = raw.hex()
    return out
