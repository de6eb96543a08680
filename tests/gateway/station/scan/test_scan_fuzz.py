"""Seeded fuzzing of every scan parser (AIM, GS1 element strings, Digital Link, EPC, and the rules on
top): any text gives a result with its errors, never an exception, in time linear in its length.

Quick by default; FUZZ_EXAMPLES=20000 for a long run.
"""

import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.model import SCAN, Reading
from gateway.station.context import Change, Context, apply
from gateway.station.scan import aim, epc
from gateway.station.scan.decode import KEYS, Decoder
from gateway.station.scan.gs1check import valid
from gateway.station.scan.rules import ScanRules

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
G = "0109501101020917"
GS = "\x1d"
PREFIXES = ["", "]C1", "]d2", "]Q3", "]e0", "]E0", "]C0", "]1", "]", "]]", "]C", "]é1", "]C¹", "]Z9"]
# Pieces a label is made of, and the characters that broke parsers before.
PIECES = [G, "0109501101020918", "00376104250021234569", "10", "21", "17", "11", "30", "37", "400", "414", "3103", "7003",
          "8003", "261231", "261200", "261331", "LOT-A42", "SN0001", GS, GS + GS, "^", "~", "|", "(01)", "(10)", "(", ")",
          "¹", "²", "٣", "ß", "é", "\x00", "\n", "\r", " ", "\ufffd", "0", "9", "https://", "HTTPS://ID.GS1.ORG", "/01/",
          "/10/", "?17=", "&", "%2F", "%", "[", "]", ":", "@", "3074257BF7194E4000001A85", "E280"]
known = st.sampled_from(PIECES)
piece = st.one_of(known, known, known, st.text(max_size=4), st.text(alphabet="0123456789", min_size=1, max_size=20))
labels = st.builds(lambda p, body: p + "".join(body), st.sampled_from(PREFIXES), st.lists(piece, max_size=8))
hosts = st.one_of(st.sampled_from(["id.gs1.org", "ID.GS1.ORG", "Example.Com:8080", "", "[", "[::1]", "a..b", "x_y.org", ":80",
                                   "h:abc", "é.org", "-a.org", "user@host"]), st.text(max_size=12))
paths = st.lists(st.one_of(st.sampled_from(["01", "09501101020917", "10", "LOT42", "21", "00", "8004", "414", "", "%", "%ZZ"]),
                           st.text(max_size=6)), max_size=8)
links = st.builds(lambda s, h, p, q: f"{s}://{h}/{'/'.join(p)}{q}", st.sampled_from(["https", "HTTPS", "Http", "hTtP", "ftp", "https:"]),
                  hosts, paths, st.sampled_from(["", "?17=261231", "?17=", "?=&", "?17=261331&10=X", "#x", "?%"]))
DECODER = Decoder()
RULES = ScanRules()
CTX = apply(Context("st"), Change("start", "scan", work_order="WO-1"))[0]


def _well_formed(f: dict) -> None:
    assert set(KEYS) <= set(f)
    assert len(f["errors"]) == len(f["error_codes"])
    assert all(isinstance(x, str) and x for x in f["errors"] + f["error_codes"])
    # What a field holds is what the label says, validated: a wrong check digit stays under `ai`.
    for name in ("gtin", "sscc"):
        assert f[name] is None or valid(f[name]), (name, f[name])
    assert f["count"] is None or isinstance(f["count"], int)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in (f.get("ai") or {}).items())


def _judged(text: str) -> None:
    f = DECODER.fields(text)
    _well_formed(f)
    for ctx in (CTX, Context("st")):
        v = RULES.evaluate(Reading("scan", text, 1_750_000_000.0, type=SCAN), ctx, 1_750_000_000.0)
        if v.status == "rejected":  # a refused scan says why
            assert v.reason_code and v.message


@FUZZ
@given(labels)
def test_any_label(text):
    _judged(text)


@FUZZ
@given(st.text(max_size=40))
def test_aim_split(text):
    ident, body = aim.split(text)
    assert (ident or "") + body == text
    assert ident is None or (ident.isascii() and ident[1].isalpha() and ident[2].isalnum())
    assert (aim.malformed(text) is None) == (not text.startswith("]") or ident is not None)
    _judged(text)


@FUZZ
@given(links)
def test_digital_link(uri):
    _judged(uri)
    f = DECODER.fields(uri)
    if f["kind"] == "gs1" and not f["errors"]:
        assert f.get("digital_link") and f["ai"]


@FUZZ
@given(st.one_of(st.binary(min_size=0, max_size=16).map(bytes.hex), st.text(alphabet="0123456789abcdefABCDEF \n_x", max_size=30)))
def test_epc(hex_text):
    e = epc.decode(hex_text)
    assert len(e["errors"]) == len(e["error_codes"])
    assert e["errors"] or (e["epc_uri"].startswith("urn:epc:id:") and len(hex_text) == 24)
    _judged(hex_text)
    assert DECODER.fields(hex_text, "epc")["kind"] in ("epc", "unknown")


def _seconds(text: str) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        Decoder().fields(text)
        best = min(best, time.perf_counter() - t0)
    return best


FAMILIES = {
    "digits": lambda n: "1" * n,
    "gtins": lambda n: "01" * (n // 2),
    "lots": lambda n: "]d2" + (G + "10AB" + GS) * (n // 21),
    "counts": lambda n: "]C1" + ("3712" + GS) * (n // 5),
    "carets": lambda n: G + "10A^" * (n // 4),
    "hri": lambda n: "(01)09501101020917" + "(10)AB" * (n // 6),
    "link": lambda n: "https://id.gs1.org/01/09501101020917" + "/10/A" * (n // 5),
    "query": lambda n: "https://id.gs1.org/01/09501101020917?" + "17=261231&" * (n // 10),
    "hex": lambda n: "30" + "A" * n,
    "garbage": lambda n: ("]1" + GS + "¹ß(") * (n // 6),
}


def test_time_is_linear():
    # 8 times the text may take at most 24 times as long (a quadratic parser takes 64).
    slow = {}
    for name, make in FAMILIES.items():
        small, large = _seconds(make(800)), _seconds(make(6400))
        if large > 24 * max(small, 20e-6):
            slow[name] = (small, large)
    assert not slow
