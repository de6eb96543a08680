"""The CF-RU splitter and inventory parser under garbage: no exception, every byte accounted for,
valid frames found again after noise, and work linear in the input."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from drivers.rfid_serial import cfru
from simulators.rfid import seal
from tests.drivers.fuzz import LONG, cpu_seconds, fuzz

VALID = [bytes.fromhex("0700010101001e4b"), bytes.fromhex("1500010301010c0000000000000000000003136bb1a5")]


def frames():
    body = st.binary(min_size=3, max_size=60).map(lambda b: bytes([0x00, cfru.INVENTORY]) + b[2:] if len(b) > 2 else b)
    return st.one_of(st.sampled_from(VALID), body.filter(lambda b: len(b) >= 4).map(seal))


def flip(data: bytes, where: int, bit: int) -> bytes:
    if not data:
        return data
    i = where % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


pieces = st.one_of(
    frames(),
    st.binary(max_size=40),
    st.tuples(frames(), st.integers(0, 255), st.integers(0, 7)).map(lambda t: flip(*t)),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def run(chunks: list[bytes]) -> tuple[list[cfru.Frame], cfru.Splitter]:
    s = cfru.Splitter()
    out = []
    for chunk in chunks:
        out += s.feed(chunk)
    lost = s.drop_partial()
    return out + ([lost] if lost else []), s


@fuzz
@given(st.lists(pieces, max_size=12), st.lists(st.integers(0, 10_000), max_size=12))
def test_fuzz_splitter(parts, cuts):
    data = b"".join(parts)
    chunks = split(data, cuts)
    out, s = run(chunks)
    assert b"".join(f.raw for f in out) == data  # every byte given out once, in order
    for f in out:
        if f.error is None:
            assert f.raw[0] + 1 == len(f.raw) and cfru.crc16(f.raw) == 0  # a frame with its CRC leaves a zero register
            tags, error = cfru.parse_inventory(f)
            assert all(t.epc in f.raw for t in tags) and (error is None or error)
        else:
            assert f.error
    assert s.work <= 3 * len(data) + len(chunks)


@fuzz
@given(st.binary(max_size=600), st.integers(0, 2**32))
def test_fuzz_a_valid_frame_after_garbage_is_found(garbage, seed):
    rng = random.Random(seed)
    first, last = rng.choice(VALID), rng.choice(VALID)
    head = garbage + first  # the first frame may be swallowed by a length byte in the garbage
    chunks = split(head, [rng.randrange(len(head) + 1) for _ in range(rng.randint(0, 20))]) + [last]
    out, _ = run(chunks)
    starts = [0]
    for f in out:
        starts.append(starts[-1] + len(f.raw))
    q = len(head)
    # found at its place, unless a frame whose CRC happens to match runs into it (1 in 65 536 per offset)
    assert any(f.error is None and (s == q or s < q < s + len(f.raw)) for f, s in zip(out, starts))


@fuzz
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300))
def test_fuzz_parse_inventory_any_frame(cmd, status, data):
    tags, error = cfru.parse_inventory(cfru.Frame(b"", 0, cmd, status, data))
    assert isinstance(tags, list) and (error is None or isinstance(error, str))


def test_resynchronisation_work_is_linear_on_noise():
    rng = random.Random(1)
    for n in (1_000, 10_000, 100_000):
        s = cfru.Splitter()
        for _ in range(n // 16):
            s.feed(rng.randbytes(16))
        assert s.work <= 3 * n + n // 16


def test_resynchronisation_is_cheap_in_cpu():
    if not LONG:
        return  # a wall-clock budget only in the long profile; work is counted above
    rng = random.Random(2)
    reads = [rng.randbytes(rng.randint(1, 64)) for _ in range(5_000)]  # about 160 kB of noise
    s = cfru.Splitter()
    cpu = cpu_seconds(lambda: [s.feed(r) for r in reads])
    assert cpu / sum(map(len, reads)) < 50e-6  # it was about 120 us per byte with a CRC per offset
