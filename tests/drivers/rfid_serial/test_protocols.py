"""CF-RU and RDM6300 vectors from their protocol documents, framing faults, read windows."""

import pytest

from drivers.rfid_serial import cfru, rdm6300
from drivers.rfid_serial.window import Windows


def test_crc_mcrf4xx_check_value():
    assert cfru.crc16(b"123456789") == 0x6F91  # the catalogue check value of CRC-16/MCRF4XX


def test_empty_inventory_vector():
    (f,) = cfru.Splitter().feed(bytes.fromhex("0700010101001e4b"))
    assert f.error is None and (f.cmd, f.status) == (1, 1)
    assert cfru.parse_inventory(f) == ([], None)


def test_one_tag_vector():
    (f,) = cfru.Splitter().feed(bytes.fromhex("1500010301010c0000000000000000000003136bb1a5"))
    tags, err = cfru.parse_inventory(f)
    assert err is None and f.status == cfru.MORE
    assert tags == [cfru.Tag(bytes.fromhex("000000000000000000000313"), 1, 0x6B)]


def test_split_reads_and_bad_crc_resync():
    good = bytes.fromhex("1500010301010c0000000000000000000003136bb1a5")
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    s = cfru.Splitter()
    assert s.feed(bytes(bad) + good[:5]) == []  # waiting: the bad frame might still be a prefix
    out = s.feed(good[5:])
    assert [f.error is None for f in out] == [False, True]
    assert out[0].raw == bytes(bad) and out[1].raw == good


def test_inventory_answer_that_does_not_add_up():
    f = cfru.Frame(b"", 0, 1, 1, bytes([1, 2, 12]) + b"\x00" * 13)
    tags, err = cfru.parse_inventory(f)
    assert len(tags) == 1 and "2 tags" in err


def test_commands_are_sealed():
    assert cfru.inventory_command().hex() == "04ff011bb4"
    cmd = cfru.inventory_command(0x00, antenna=3)
    assert cmd[0] == len(cmd) - 1 and cmd[10] == 0x82 and cfru.crc16(cmd[:-2]) == cmd[-2] | cmd[-1] << 8


def test_rdm6300_vector_and_checksum():
    b = rdm6300.parse(b"\x020F00A1B2C3DF\x03")
    assert (b.card, b.version, b.error) == ("0010597059", "0F", None)
    assert "checksum" in rdm6300.parse(b"\x020F00A1B2C3DE\x03").error
    assert rdm6300.parse(b"\x020F00A1B2C3ZZ\x03").error


def test_rdm6300_splitter_keeps_garbage():
    out = rdm6300.Splitter().feed(b"xx\x020F00A1B2C3DF\x03\x020F00\x020F00A1B2C3DF\x03")
    assert [(b.card, b.error is not None) for b in out] == [(None, True), ("0010597059", False), (None, True), ("0010597059", False)]


@pytest.mark.parametrize("max_window", [None, 100.0])
def test_window_folds_repeats(max_window):
    w = Windows(hold=1.0, max_window=max_window)
    assert w.read("A", 0.0, 50, 1) is not None
    for i in range(1, 200):
        assert w.read("A", i * 0.01, 50 + i % 30, 2) is None
    assert w.close_due(1.5) == []
    assert w.close_due(3.0)[0].summary() == {"read_count": 200, "rssi_max": 79, "first_seen": 0.0, "last_seen": 1.99, "antennas": [1, 2]}
    assert w.read("A", 5.0) is not None  # came back: a new window
