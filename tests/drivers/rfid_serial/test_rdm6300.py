"""The RDM6300 splitter and frame parser under garbage: no exception, every byte accounted for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drivers.rfid_serial import rdm6300
from simulators.rfid import Rdm6300Reader
from tests.drivers.fuzz import fuzz

HEXISH = b"0123456789ABCDEFabcdef \t\x0b\x0c\r\n\x00\x02\x03G"


def test_control_bytes_in_the_hex_body_are_a_bad_frame():
    # bytes.fromhex skips white space: these once decoded to fewer than 6 bytes and raised IndexError
    for body in (b"0F00A1B2C3\x0c\x0c", b"0F 00 A1 B2 ", b"\t\t\t\t\t\t\t\t\t\t\t\t", b"0F00A1B2C3D\xff"):
        b = rdm6300.parse(b"\x02" + body + b"\x03")
        assert b.card is None and b.error == "non-hex characters in frame"


def frames():
    card = st.integers(0, 2**32 - 1)
    return st.one_of(
        st.builds(lambda c, v: Rdm6300Reader.frame(c, v), card, st.integers(0, 255)),
        st.builds(lambda c: Rdm6300Reader.frame(c, corrupt=True), card),
        st.lists(st.sampled_from(HEXISH), min_size=10, max_size=14).map(lambda b: b"\x02" + bytes(b) + b"\x03"),
    )


pieces = st.one_of(frames(), st.binary(max_size=30), st.lists(st.sampled_from(HEXISH), max_size=20).map(bytes))


@fuzz
@given(st.lists(pieces, max_size=12), st.lists(st.integers(0, 1000), max_size=10))
def test_fuzz_splitter(parts, cuts):
    data = b"".join(parts)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    s = rdm6300.Splitter()
    out = []
    for a, b in zip(points, points[1:]):
        out += s.feed(data[a:b])
    assert data.startswith(b"".join(b.raw for b in out))  # in order, nothing invented; the rest is pending
    assert len(data) - sum(len(b.raw) for b in out) < rdm6300.FRAME_LEN
    for b in out:
        if b.error is None:
            assert len(b.card) == 10 and b.card.isdigit() and int(b.card) < 2**32
        else:
            assert b.card is None


@fuzz
@given(st.lists(st.sampled_from(HEXISH), min_size=12, max_size=12).map(bytes))
def test_fuzz_parse_any_body(body):
    b = rdm6300.parse(b"\x02" + body + b"\x03")
    assert (b.card is None) == (b.error is not None)
