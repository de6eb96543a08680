"""GS1 decoding through biip: element strings, Digital Link URIs, HRI with parentheses, bare GTINs.

biip never raises on bad input; it fills `*_error` fields. This module turns its result into the flat
record fields (`gtin`, `batch_lot`, `serial`, `expiry`, `sscc`, `count`, `order_number`, `ai`, …) and
adds what biip does not check: a likely missing GS separator (a variable-length value that swallowed
the next element string) and a scanner that sends another character instead of GS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from biip import ParseConfig, ParseError, parse
from biip.gs1_application_identifiers import _GS1_APPLICATION_IDENTIFIERS as _AIS
from biip.gs1_element_strings import _parse_date_and_datetime
from biip.gs1_messages import GS1Message

from gateway.scan.gs1check import valid as _check_ok

GS = "\x1d"
# AI → record field. Dates become ISO strings; counts become ints.
FIELDS = {
    "00": "sscc", "01": "gtin", "02": "content_gtin", "10": "batch_lot", "11": "prod_date", "13": "pack_date",
    "15": "best_before", "16": "sell_by", "17": "expiry", "21": "serial", "22": "cpv", "240": "additional_id",
    "241": "customer_part", "30": "count", "37": "count", "400": "order_number", "401": "ginc", "402": "gsin",
    "410": "ship_to", "414": "gln", "7003": "expiry_time",
}
_INT_FIELDS = {"30", "37"}
# Characters outside GS1 character set 82 that scanners are commonly set to send instead of GS.
SUBSTITUTES = ("^", "~", "|", "{", "}", "#", "@", "\\")
CSET82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
_DATE_AI = re.compile(r"(1[1-7])(\d\d(?:0\d|1[0-2])(?:[0-2]\d|3[01]))")
_VARIABLE = {ai for ai, spec in _AIS.items() if spec.separator_required}
# The fast path below uses biip's own AI table, patterns and date rules; it only skips building
# biip's objects. Anything it is not sure about (an error, an unusual AI) goes to biip itself.
_FAST_AIS = {ai: (spec, re.compile(spec.pattern.removesuffix("$"))) for ai, spec in _AIS.items()}
_DATE_AIS = frozenset({"11", "12", "13", "15", "16", "17", "4324", "4325", "4326", "7003", "7006", "7007", "7011", "8008"})


def _config(separators: tuple[str, ...], verify_date: bool) -> ParseConfig:
    return ParseConfig(separator_chars=(GS, *separators), gs1_element_strings_verify_date=verify_date)


def decode(text: str, *, aim_is_gs1: bool, separators: Iterable[str] = (), auto_separator: bool = True, verify_date: bool = True) -> dict:
    """Decode `text` (AIM identifier already removed). Returns record fields, `errors` and `error_codes`;
    `kind` is gs1, gtin, sscc or None (not a GS1 code, and not claiming to be one)."""
    seps = tuple(s for s in separators if s != GS)
    out = _decode(text, aim_is_gs1, seps, verify_date)
    if out["kind"] in (None, "gs1") and out["errors"] and auto_separator:
        # A scanner configured to send e.g. `^` for GS: retry with the stray character as separator.
        for ch in SUBSTITUTES:
            if ch in text and ch not in seps:
                retry = _decode(text, aim_is_gs1, (*seps, ch), verify_date)
                if retry["kind"] and not retry["errors"]:
                    retry["errors"].append(f"{ch!r} used as GS separator (configure `separators` for this scanner)")
                    retry["error_codes"].append("separator_substituted")
                    return retry
    return out


def _claims_gs1(text: str, aim_is_gs1: bool) -> bool:
    """Whether a failed parse should be reported as a broken GS1 code rather than as 'not GS1'."""
    if aim_is_gs1 or GS in text or text.startswith("(0"):
        return True
    # 01 + a GTIN-14 with a valid check digit, or 00 + a valid SSCC, at the start: nobody types that by chance.
    return (text.startswith("01") and _check_ok(text[2:16])) or (text.startswith("00") and _check_ok(text[2:20]))


def _fast(text: str, seps: tuple[str, ...]) -> list[tuple] | None:
    """Element strings as (ai, value, date, gtin_error, sscc_error), exactly as biip would give them
    for a clean message; None as soon as anything needs biip (errors, unknown AI)."""
    rest = text.strip()
    items: list[tuple] = []
    while rest:
        entry = _FAST_AIS.get(rest[:2]) or _FAST_AIS.get(rest[:3]) or _FAST_AIS.get(rest[:4])
        if entry is None:
            return None
        spec, rx = entry
        chunk = rest
        for sep in seps:
            chunk = chunk.split(sep, 1)[0]
        m = rx.match(chunk)
        if m is None:
            return None
        value = "".join(g for g in m.groups() if g is not None)
        ai = spec.ai
        date = None
        if ai in _DATE_AIS:
            try:
                date = _parse_date_and_datetime(value)[0]
            except ValueError:
                return None
        elif ai in ("00", "01", "02", "03") and not _check_ok(value):
            return None
        items.append((ai, value, date, None, None))
        rest = rest[len(ai) + len(value) :]
        while rest.startswith(seps):
            rest = rest[1:]
    return items or None


def _decode(text: str, aim_is_gs1: bool, seps: tuple[str, ...], verify_date: bool) -> dict:
    out: dict = {"kind": None, "errors": [], "error_codes": []}
    digits = text.isdigit()
    if not aim_is_gs1 and GS not in text and not text[:2].isdigit() and not text.startswith(("http", "HTTP", "(")):
        return out  # cannot be a GS1 element string, Digital Link, HRI or GTIN: no need to ask biip
    if digits and len(text) in (8, 12, 13, 14) and not aim_is_gs1 and _check_ok(text):
        out["kind"], out["gtin"] = "gtin", text
        return out
    if verify_date and not text.startswith(("http", "HTTP", "(")) and not (digits and len(text) in (8, 12, 13, 14, 18)):
        items = _fast(text, (GS, *seps))
        if items is not None:
            return _elements(out, items, text)
    cfg = _config(seps, verify_date)
    if text.startswith("(") and re.match(r"^\(\d{2,4}\)", text):
        try:
            msg = GS1Message.parse_hri(text, config=cfg)
        except (ParseError, ValueError) as exc:  # unlike biip.parse, parse_hri raises on bad input
            out["kind"] = "gs1"
            return _error(out, "gs1_invalid", str(exc))
        return _elements(out, _items(msg.element_strings), text)
    res = parse(text, config=cfg)
    if res.gs1_digital_link_uri is not None:
        out["digital_link"] = True
        return _elements(out, _items(res.gs1_digital_link_uri.element_strings), text)
    if res.gs1_message is not None and (aim_is_gs1 or not digits or len(text) not in (8, 12, 13, 14)):
        return _elements(out, _items(res.gs1_message.element_strings), text)
    if digits and len(text) in (8, 12, 13, 14) and not aim_is_gs1:
        out["kind"] = "gtin"
        if res.gtin is not None:
            out["gtin"] = res.gtin.value  # as printed; `gtin14()` normalises for comparisons
            return out
        out["kind"] = "unknown"
        return _error(out, "gtin_check_digit" if "check digit" in (res.gtin_error or "") else "gtin_invalid", res.gtin_error or "not a GTIN")
    if digits and len(text) == 18 and res.sscc is None and res.sscc_error:
        out["kind"] = "unknown"
        return _error(out, "sscc_invalid", res.sscc_error)
    if text.startswith(("http://", "https://")) and res.gs1_digital_link_uri_error and re.search(r"/(01|00|414|8004)/", text):
        out["kind"] = "gs1"
        return _error(out, "gs1_digital_link_invalid", res.gs1_digital_link_uri_error)
    if _claims_gs1(text, aim_is_gs1):
        out["kind"] = "gs1"
        message = res.gs1_message_error or res.gtin_error or "not a valid GS1 element string"
        stray = sorted({ch for ch in text if ch not in CSET82 and ch not in seps and ch != GS})
        if stray:
            message += f" ({', '.join(map(repr, stray))} outside GS1 character set 82)"
        return _error(out, "gs1_invalid", message)
    return out


def _error(out: dict, code: str, message: str) -> dict:
    out["errors"].append(message)
    out["error_codes"].append(code)
    return out


def _items(elements) -> list[tuple]:
    return [(es.ai.ai, es.value, es.date, es.gtin_error, es.sscc_error) for es in elements]


def _elements(out: dict, items: list[tuple], text: str) -> dict:
    ai: dict[str, str] = {}
    for code, value, date, gtin_error, sscc_error in items:
        ai[code] = value
        if code in _VARIABLE:
            _missing_gs(out, code, value)
        name = FIELDS.get(code)
        if name is None:
            continue
        if date is not None:
            out[name] = date.isoformat()
        elif code in _INT_FIELDS:
            out[name] = int(value)
        else:
            out[name] = value
        if gtin_error:
            _error(out, "gtin_check_digit", gtin_error)
        if sscc_error:
            _error(out, "sscc_check_digit", sscc_error)
    out["ai"] = ai
    has_other = any(k != "00" for k in ai)
    out["kind"] = "gs1" if has_other or not ai else "sscc"
    return out


def gtin14(gtin: str) -> str:
    """GTIN-8/12/13/14 in its 14-digit form, the one to compare and look up."""
    return gtin.zfill(14)


_CANDIDATE = re.compile(r"(?=0[01]|1[1-7])")


def _missing_gs(out: dict, code: str, value: str) -> None:
    """Flag a variable-length value that seems to contain the next element string (GS left out)."""
    for m in _CANDIDATE.finditer(value, 1):
        i = m.start()
        tail = value[i:]
        found = None
        if tail.startswith("01") and len(tail) >= 16 and _check_ok(tail[2:16]):
            found = "01"
        elif tail.startswith("00") and len(tail) >= 20 and _check_ok(tail[2:20]):
            found = "00"
        else:
            d = _DATE_AI.match(tail)
            # A date AI counts only when it ends the value or is itself followed by an AI-looking digit pair.
            if d and (d.end() == len(tail) or (len(tail) > d.end() + 2 and tail[d.end() : d.end() + 2].isdigit())):
                found = d.group(1)
        if found:
            _error(out, "missing_gs", f"AI ({code}) value {value!r} likely contains AI ({found}) at offset {i}: a GS separator seems to be missing")
            return
