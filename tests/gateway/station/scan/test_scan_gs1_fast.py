"""The GS1 fast path gives exactly what biip gives, or steps aside (None) and lets biip answer."""

import random

from biip import ParseConfig, ParseError
from biip.gs1_application_identifiers import _GS1_APPLICATION_IDENTIFIERS as AIS
from biip.gs1_messages import GS1Message

from gateway.station.scan import gs1
from gateway.station.scan.gs1check import check_digit

GS = "\x1d"


def test_ai_table_is_prefix_free():
    # The fast path looks AIs up by their first 2, 3 or 4 characters; biip takes the first prefix match.
    codes = list(AIS)
    assert not [(a, b) for a in codes for b in codes if a != b and b.startswith(a)]


def _gtin(rng, ok=True):
    body = "".join(rng.choice("0123456789") for _ in range(13))
    d = check_digit(body)
    return body + str(d if ok else (d + 1) % 10)


def _element(rng):
    kind = rng.randrange(12)
    if kind == 0:
        return "01" + _gtin(rng, ok=rng.random() > 0.1), False
    if kind == 1:
        return "00" + _gtin(rng)[:-1] + "".join(rng.choice("0123456789") for _ in range(4))[:4] + "1", False
    if kind in (2, 3):
        mm = rng.choice(["01", "06", "12", "13", "02"])
        dd = rng.choice(["00", "15", "28", "29", "30", "31", "32"])
        return rng.choice(["11", "13", "15", "17"]) + f"{rng.randrange(100):02d}{mm}{dd}", False
    if kind in (4, 5):
        return rng.choice(["10", "21"]) + "".join(rng.choice("ABCXYZ0123456789-./") for _ in range(rng.randint(1, 22))), True
    if kind == 6:
        return rng.choice(["37", "30"]) + str(rng.randrange(10**rng.randint(1, 9))), True
    if kind == 7:
        return "400" + "".join(rng.choice("PO-0123456789") for _ in range(rng.randint(1, 12))), True
    if kind == 8:
        return "3103" + f"{rng.randrange(10**6):06d}", False
    if kind == 9:
        return "7003" + f"{rng.randrange(100):02d}1231{rng.randrange(25):02d}{rng.randrange(60):02d}", False
    if kind == 10:
        return "91" + "".join(rng.choice("abc123") for _ in range(rng.randint(1, 5))), True
    return rng.choice(["23", "99999", "7A", "254"]) + "12", True


def test_fast_path_matches_biip():
    rng = random.Random(5)
    seps = (GS, "^")
    cfg = ParseConfig(separator_chars=seps)
    agreed = fallback = 0
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 4)):
            text, variable = _element(rng)
            parts.append(text + (rng.choice(seps) if variable or rng.random() < 0.1 else ""))
        if rng.random() < 0.1:  # a forgotten separator
            parts = [p.rstrip(GS + "^") for p in parts]
        label = "".join(parts)
        fast = gs1._fast(label, seps)
        try:
            msg = GS1Message.parse(label, config=cfg)
        except ParseError:  # the fast path must not claim success where biip fails
            assert fast is None, label
            fallback += 1
            continue
        reference = gs1._items(msg.element_strings)
        if fast is None:
            fallback += 1
            continue
        assert fast == reference, label
        agreed += 1
    assert agreed > 1000 and fallback > 300  # both branches well exercised


def test_decode_is_the_same_with_and_without_the_fast_path(monkeypatch):
    labels = ["]C10109501101020917172612311" + "0LOT-A42", "0109501101020917" + "10B-77\x1d3712\x1d400PO-5521", "01095011010209171725123121SN0001",
              "0109501101020917" + "10AB1725123121S1", "5901234123457", "12345670", "00376104250021234569"]
    fast = [gs1.decode(t.removeprefix("]C1"), aim_is_gs1=t.startswith("]C1")) for t in labels]
    monkeypatch.setattr(gs1, "_fast", lambda text, seps: None)
    slow = [gs1.decode(t.removeprefix("]C1"), aim_is_gs1=t.startswith("]C1")) for t in labels]
    assert fast == slow


def test_shortest_element_is_a_lower_bound():
    # The missing-GS search skips offsets where no element string fits: the bound must never be too high.
    from re import _parser

    for ai, spec in AIS.items():
        shortest = max(_parser.parse(spec.pattern).getwidth()[0], len(ai) + 1)
        assert gs1._shortest(ai, spec.format) <= shortest, ai
