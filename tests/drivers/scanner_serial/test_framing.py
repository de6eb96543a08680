from drivers.scanner_serial.framing import Framer, Frame


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


def test_gs_and_cp1252_bytes_pass_through():
    assert Framer("line").feed(b"]C1010\x1d10\xe4\r") == [Frame(b"]C1010\x1d10\xe4")]
