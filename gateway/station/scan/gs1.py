"""GS1 decoding through biip: element strings, Digital Link URIs, HRI with parentheses, bare GTINs.

biip fills `*_error` fields for bad data, but some inputs still make it raise (a `]` that is no
symbology identifier, a URI that urllib refuses): every call into it is fenced here, so any text
gives fields and errors. This module turns its result into the flat record fields (`gtin`,
`batch_lot`, `serial`, `expiry`, `sscc`, `count`, `order_number`, `ai`, …) and adds what biip does
not check: a likely missing GS separator (a variable-length value that swallowed further element
strings, found with the AI table), a scanner that sends another character instead of GS, a Digital
Link whose scheme or host is in upper case (RFC 3986 makes both case-insensitive).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from biip import ParseConfig, ParseError, parse
from biip.gs1_application_identifiers import _GS1_APPLICATION_IDENTIFIERS as _AIS
from biip.gs1_digital_link_uris import _PRIMARY_IDENTIFIER_MAP, GS1DigitalLinkURI
from biip.gs1_element_strings import _parse_date_and_datetime
from biip.gs1_messages import GS1Message

from gateway.station.scan.gs1check import digits as _digits
from gateway.station.scan.gs1check import valid as _check_ok

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
# QR Code's capacity in digits, the most any GS1 symbol holds: longer text is no GS1 scan, and
# biip's parsers (which re-slice the rest of the text per element) never see it.
MAX_TEXT = 7089
_VARIABLE = {ai for ai, spec in _AIS.items() if spec.separator_required}
# The fast path below uses biip's own AI table, patterns and date rules; it only skips building
# biip's objects. Anything it is not sure about (an error, an unusual AI) goes to biip itself.
# ASCII: `\d` in biip's patterns would otherwise take any Unicode digit.
_FAST_AIS = {ai: (spec, re.compile(spec.pattern.removeprefix("^").removesuffix("$"), re.ASCII)) for ai, spec in _AIS.items()}
_DATE_AIS = frozenset({"11", "12", "13", "15", "16", "17", "4324", "4325", "4326", "7003", "7006", "7007", "7011", "8008"})
_CHECKED = frozenset({"00", "01", "02", "03"})


def _shortest(ai: str, fmt: str) -> int:
    """A lower bound of an element string's length from the AI table's format (`N2+N18`, `N2+X..20`):
    fixed parts count, optional and variable ones do not, and a value is never empty."""
    fixed = sum(int(part[1:]) for part in fmt.split("+") if part[:1].isalpha() and part[1:].isdigit())
    return max(fixed, len(ai) + 1)


_SHORTEST: dict[str, int] = {}
for _ai, _spec in _AIS.items():
    _SHORTEST[_ai[:2]] = min(_SHORTEST.get(_ai[:2], 99), _shortest(_ai, _spec.format))
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DL_KEY = re.compile("/(?:" + "|".join(sorted(_PRIMARY_IDENTIFIER_MAP)) + ")/")


def _config(separators: tuple[str, ...], verify_date: bool) -> ParseConfig:
    return ParseConfig(separator_chars=(GS, *separators), gs1_element_strings_verify_date=verify_date)


def decode(text: str, *, aim_is_gs1: bool, separators: Iterable[str] = (), auto_separator: bool = True, verify_date: bool = True) -> dict:
    """Decode `text` (AIM identifier already removed). Returns record fields, `errors` and `error_codes`;
    `kind` is gs1, gtin, sscc or None (not a GS1 code, and not claiming to be one)."""
    seps = tuple(s for s in separators if s != GS)
    out = _decode(text, aim_is_gs1, seps, verify_date)
    if out["kind"] in (None, "gs1") and out["errors"] and auto_separator and len(text) <= MAX_TEXT:
        # A scanner configured to send e.g. `^` for GS: retry with the stray character as separator.
        for ch in SUBSTITUTES:
            if ch in text and ch not in seps:
                retry = _decode(text, aim_is_gs1, (*seps, ch), verify_date)
                if retry["kind"] and not retry["errors"]:
                    retry["errors"].append(f"{ch!r} used as GS separator (configure `separators` for this scanner)")
                    retry["error_codes"].append("separator_substituted")
                    return retry
    return out


def web_uri(text: str) -> bool:
    """`http:` or `https:` in any case: a Digital Link candidate."""
    m = _SCHEME.match(text)
    return m is not None and m.group(1).lower() in ("http", "https")


def _claims_gs1(text: str, aim_is_gs1: bool) -> bool:
    """Whether a failed parse should be reported as a broken GS1 code rather than as 'not GS1'."""
    if aim_is_gs1 or GS in text or text.startswith("(0"):
        return True
    # 01 + a GTIN-14 with a valid check digit, or 00 + a valid SSCC, at the start: nobody types that by chance.
    return (text.startswith("01") and _check_ok(text[2:16])) or (text.startswith("00") and _check_ok(text[2:20]))


def _lookup(text: str, pos: int) -> tuple | None:
    return _FAST_AIS.get(text[pos : pos + 2]) or _FAST_AIS.get(text[pos : pos + 3]) or _FAST_AIS.get(text[pos : pos + 4])


def _value(m: re.Match) -> str:
    groups = m.groups()
    return groups[0] if len(groups) == 1 else "".join(g for g in groups if g is not None)


def _next_sep(text: str, pos: int, seps: tuple[str, ...]) -> int:
    end = len(text)
    for s in seps:
        i = text.find(s, pos, end)
        if i >= 0:
            end = i
    return end


def _fast(text: str, seps: tuple[str, ...]) -> list[tuple] | None:
    """Element strings as (ai, value, date, gtin_error, sscc_error, gln_error), exactly as biip would
    give them for a clean message; None as soon as anything needs biip (errors, unknown AI).
    Positions, not slices: the time stays linear in the length of the text."""
    text = text.strip()
    n, pos, stop = len(text), 0, -1
    items: list[tuple] = []
    get = _FAST_AIS.get
    while pos < n:
        entry = get(text[pos : pos + 2]) or get(text[pos : pos + 3]) or get(text[pos : pos + 4])
        if entry is None:
            return None
        spec, rx = entry
        if stop < pos:
            stop = _next_sep(text, pos, seps)
        m = rx.match(text, pos, stop)
        if m is None:
            return None
        groups = m.groups()
        value = groups[0] if len(groups) == 1 else "".join(g for g in groups if g is not None)
        ai = spec.ai
        date = None
        if ai in _DATE_AIS:
            try:
                date = _parse_date_and_datetime(value)[0]
            except ValueError:
                return None
        elif (ai in _CHECKED or ai[:2] == "41") and not _check_ok(value):
            return None
        items.append((ai, value, date, None, None, None))
        pos += len(ai) + len(value)
        while pos < n and text[pos] in seps:
            pos += 1
    return items or None


def _decode(text: str, aim_is_gs1: bool, seps: tuple[str, ...], verify_date: bool) -> dict:
    out: dict = {"kind": None, "errors": [], "error_codes": []}
    web = web_uri(text)
    if not aim_is_gs1 and GS not in text and not _digits(text[:2]) and not text.startswith("(") and not web:
        return out  # cannot be a GS1 element string, Digital Link, HRI or GTIN: no need to ask biip
    claims = _claims_gs1(text, aim_is_gs1)
    if len(text) > MAX_TEXT:
        return _refuse(out, claims, "gs1_too_long", f"{len(text)} characters: more than any GS1 symbol holds ({MAX_TEXT})")
    stray = [] if text.isascii() else sorted({ch for ch in text if not ch.isascii() and ch not in seps})
    if stray:
        return _refuse(out, claims, "gs1_invalid", f"{', '.join(map(repr, stray[:8]))} outside GS1 character set 82")
    digits = _digits(text)
    if digits and len(text) in (8, 12, 13, 14) and not aim_is_gs1 and _check_ok(text):
        out["kind"], out["gtin"] = "gtin", text
        return out
    cfg = _config(seps, verify_date)
    if web:
        return _digital_link(out, text, cfg)
    if verify_date and not text.startswith("(") and not (digits and len(text) in (8, 12, 13, 14, 18)):
        items = _fast(text, (GS, *seps))
        if items is not None:
            return _elements(out, items, strings=True)
    if text.startswith("(") and re.match(r"^\(\d{2,4}\)", text):
        try:
            msg = GS1Message.parse_hri(text, config=cfg)
        except (ParseError, ValueError) as exc:  # unlike biip.parse, parse_hri raises on bad input
            out["kind"] = "gs1"
            return _error(out, "gs1_invalid", str(exc))
        return _elements(out, _items(msg.element_strings), strings=False)
    try:
        res = parse(text, config=cfg)
    except (ParseError, ValueError) as exc:  # e.g. a leading `]` that is no symbology identifier
        return _refuse(out, claims, "gs1_invalid", str(exc))
    if res.gs1_message is not None and (aim_is_gs1 or not digits or len(text) not in (8, 12, 13, 14)):
        return _elements(out, _items(res.gs1_message.element_strings), strings=True)
    if digits and len(text) in (8, 12, 13, 14) and not aim_is_gs1:
        out["kind"] = "gtin"
        if res.gtin is not None:
            out["gtin"] = res.gtin.value  # as printed; `gtin14()` normalises for comparisons
            return out
        out["kind"] = "unknown"
        return _error(out, "gtin_check_digit" if "check digit" in (res.gtin_error or "") else "gtin_invalid", res.gtin_error or "not a GTIN")
    if digits and len(text) == 18 and not aim_is_gs1 and res.sscc is None and res.sscc_error:
        out["kind"] = "unknown"
        return _error(out, "sscc_invalid", res.sscc_error)
    if claims:
        message = res.gs1_message_error or res.gtin_error or "not a valid GS1 element string"
        stray = sorted({ch for ch in text if ch not in CSET82 and ch not in seps and ch != GS})
        if stray:
            message += f" ({', '.join(map(repr, stray))} outside GS1 character set 82)"
        return _refuse(out, True, "gs1_invalid", message)
    return out


def _digital_link(out: dict, text: str, cfg: ParseConfig) -> dict:
    """A GS1 Digital Link URI; scheme and host compare case-insensitively, the path does not."""
    keyed = _DL_KEY.search(text) is not None
    try:
        parts = urlsplit(text)
        port = parts.port  # urllib checks the port only when asked
    except ValueError as exc:
        return _refuse(out, keyed, "gs1_digital_link_invalid", f"malformed URI: {exc}")
    host = parts.hostname or ""
    if not host or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        return _refuse(out, keyed, "gs1_digital_link_invalid", f"malformed URI host {parts.netloc!r}")
    netloc = host if port is None else f"{host}:{port}"
    uri = urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))
    try:
        link = GS1DigitalLinkURI.parse(uri, config=cfg)
    except (ParseError, ValueError) as exc:
        return _refuse(out, keyed, "gs1_digital_link_invalid", str(exc))
    out["digital_link"] = True
    return _elements(out, _items(link.element_strings), strings=False)


def _refuse(out: dict, claims: bool, code: str, message: str) -> dict:
    """A failed parse: an error when the text claims to be GS1, else simply 'not GS1'."""
    if not claims:
        return out
    out["kind"] = "gs1"
    return _error(out, code, message)


def _error(out: dict, code: str, message: str) -> dict:
    out["errors"].append(message)
    out["error_codes"].append(code)
    return out


def _items(elements) -> list[tuple]:
    return [(es.ai.ai, es.value, es.date, es.gtin_error, es.sscc_error, es.gln_error) for es in elements]


def _elements(out: dict, items: list[tuple], strings: bool) -> dict:
    """Record fields from element strings. `strings`: they came concatenated (a GS can be missing);
    Digital Link segments and HRI parentheses delimit every value."""
    ai: dict[str, str] = {}
    present = {item[0] for item in items}
    for code, value, date, gtin_error, sscc_error, gln_error in items:
        ai[code] = value
        if strings and code in _VARIABLE:
            _missing_gs(out, code, value, present)
        check = gtin_error and ("gtin_check_digit", gtin_error) or sscc_error and ("sscc_check_digit", sscc_error) or gln_error and ("gln_check_digit", gln_error)
        if check:
            _error(out, *check)
            continue  # a wrong check digit stays under `ai` and in `errors`, never in the field
        name = FIELDS.get(code)
        if name is None:
            continue
        if date is not None:
            out[name] = date.isoformat()
        elif code in _INT_FIELDS:
            if _digits(value):
                out[name] = int(value)
            else:
                _error(out, "gs1_invalid", f"AI ({code}) needs a count of 1 to 8 digits, got {value!r}")
        else:
            out[name] = value
    out["ai"] = ai
    has_other = any(k != "00" for k in ai)
    out["kind"] = "gs1" if has_other or not ai else "sscc"
    return out


def gtin14(gtin: str) -> str:
    """GTIN-8/12/13/14 in its 14-digit form, the one to compare and look up."""
    return gtin.zfill(14)


def _missing_gs(out: dict, code: str, value: str, present: set[str]) -> None:
    """Flag a variable-length value whose tail reads whole as further element strings (the GS after
    it left out). An AI the message already has elsewhere does not count: it cannot occur twice."""
    n = len(value)
    for i in range(1, n - 2):
        if n - i < _SHORTEST.get(value[i : i + 2], 99):
            continue  # no AI starting here fits in what is left
        found = _swallowed(value, i)
        if found and found not in present:
            _error(out, "missing_gs", f"AI ({code}) value {value!r} likely contains AI ({found}) at offset {i}: a GS separator seems to be missing")
            return


def _swallowed(value: str, pos: int) -> str | None:
    """The first AI if `value[pos:]` is a run of valid element strings without separators (only the
    last may be of variable length: it would have taken the rest); else None."""
    first, n = None, len(value)
    while pos < n:
        entry = _lookup(value, pos)
        if entry is None:
            return None
        spec, rx = entry
        m = rx.match(value, pos)
        if m is None:
            return None
        item = _value(m)
        if not item or (spec.separator_required and m.end() != n) or not _valid(spec.ai, item):
            return None
        first = first or spec.ai
        pos = m.end()
    return first


def _valid(ai: str, value: str) -> bool:
    if ai in _DATE_AIS:
        try:
            _parse_date_and_datetime(value)
        except ValueError:
            return False
        return True
    return not (ai in _CHECKED or ai[:2] == "41") or _check_ok(value)
