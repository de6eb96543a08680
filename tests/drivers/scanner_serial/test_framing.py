"""Scanner framing: the modes, faults kept as errors, and fuzzing: no exception, every byte accounted for,
the same scans however the stream is cut into reads, work linear in the input."""

from hypothesis import given
from hypothesis import strategies as st

from drivers.scanner_serial.framing import Frame, Framer
from tests.drivers.fuzz import LONG, cpu_seconds, fuzz


def test_line_framing_cr_crlf_lf_and_split_reads():
    f = Framer("line")
    assert f.feed(b"AB") == []
    assert f.feed(b"C\r\nDEF\rGH") == [Frame(b"ABC"), Frame(b"DEF")]
    assert f.feed(b"\n") == [Frame(b"GH")]


def test_suffix_and_prefix():
    f = Framer("suffix", suffix=b"#END", prefix=b"@")
    assert f.feed(b"@A1#END@B2#ENDC3#END") == [Frame(b"A1"), Frame(b"B2"), Frame(b"C3", "missing prefix b'@'")]


def test_stx_etx_with_garbage_and_lost_etx():
    f = Framer("stx_etx")
    out = f.feed(b"\x02ONE\x03\r\nxx\x02TW")
    assert out == [Frame(b"ONE"), Frame(b"\r\nxx", "bytes outside STX…ETX")]  # all bytes kept
    assert f.feed(b"O\x02THREE\x03") == [Frame(b"\x02TWO", "STX without ETX"), Frame(b"THREE")]


def test_overlong_and_partial_are_errors_with_bytes_kept():
    f = Framer("line", max_len=16)
    (frame,) = f.feed(b"X" * 17)
    assert frame.data == b"X" * 17 and "terminator" in frame.error
    f.feed(b"PART")
    assert f.drop_partial() == Frame(b"PART", "partial scan dropped: no terminator arrived")
    assert f.drop_partial() is None


def test_a_scan_of_only_the_prefix_is_an_error():
    assert Framer("line", prefix=b"]C1").feed(b"]C1\r") == [Frame(b"]C1", "empty scan: only the prefix")]


def test_gs_and_cp1252_bytes_pass_through():
    assert Framer("line").feed(b"]C1010\x1d10\xe4\r") == [Frame(b"]C1010\x1d10\xe4")]


# --- fuzz ------------------------------------------------------------------------------------------------

MODES = [("line", b"\r", b""), ("suffix", b"#END", b""), ("suffix", b"\r\n", b"@"), ("stx_etx", b"\r", b""), ("line", b"\r", b"]C1")]
BYTES = st.binary(max_size=8) | st.sampled_from([b"\r", b"\n", b"\r\n", b"\x02", b"\x03", b"#END", b"#EN", b"@", b"]C1", b"\x1d"])


def framer(mode):
    kind, suffix, prefix = mode
    return Framer(kind, suffix, prefix, max_len=4096)


def feed_all(f: Framer, chunks: list[bytes]):
    out = []
    for c in chunks:
        out += f.feed(c)
    lost = f.drop_partial()
    return out + ([lost] if lost else [])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def framing_bytes(mode) -> bytes:
    kind, suffix, _ = mode
    return {"line": b"\r\n", "suffix": suffix, "stx_etx": b"\x02\x03\r\n"}[kind]


@fuzz
@given(st.sampled_from(MODES), st.lists(BYTES, max_size=40), st.lists(st.integers(0, 400), max_size=12))
def test_fuzz_framing(mode, parts, cuts):
    data = b"".join(parts)
    chunks = split(data, cuts)
    f = framer(mode)
    out = feed_all(f, chunks)
    whole = feed_all(framer(mode), [data])
    # the same scans whether the bytes come in one read or many
    assert [x.data for x in out if x.error is None] == [x.data for x in whole if x.error is None]
    # nothing invented, nothing lost: every byte that is not framing is in a scan or an error, in order
    kept = bytes(b for x in out for b in x.data if b not in framing_bytes(mode))
    assert kept.replace(mode[2], b"") == bytes(b for b in data if b not in framing_bytes(mode)).replace(mode[2], b"")
    for x in out:
        assert x.error or x.data
    assert f.work <= 3 * len(data) + 8 * len(chunks)


def test_framing_work_is_linear_on_adversarial_input():
    for mode, data in ((MODES[0], b"\n" * 20_000), (MODES[1], b"#EN" * 1300), (MODES[3], b"\x02" * 20_000), (MODES[3], b"\x02A" * 2000 + b"\x03")):
        f = framer(mode)
        feed_all(f, [data[i : i + 1] for i in range(len(data))])
        assert f.work <= 3 * len(data) + 8 * len(data), mode
        if LONG:
            assert cpu_seconds(lambda: feed_all(framer(mode), [data])) < 0.5
