"""The GS1 General Specifications and TDS vectors (their published examples), and the classification order."""

import pytest

from gateway.station.scan.config import ScanSettings
from gateway.station.scan.decode import Decoder, decode, normalize_badge
from gateway.station.scan.epc import decode as epc_decode

G = "0109501101020917"
GS = "\x1d"


@pytest.mark.parametrize(
    "raw, expect",
    [
        (f"]C1{G}1726123110LOT-A42", {"kind": "gs1", "gtin": "09501101020917", "expiry": "2026-12-31", "batch_lot": "LOT-A42", "symbology": "gs1-128"}),
        (f"]d2{G}10ABC123{GS}1725123121SN0001", {"kind": "gs1", "batch_lot": "ABC123", "expiry": "2025-12-31", "serial": "SN0001", "symbology": "gs1-datamatrix"}),
        (f"{G}10B-77{GS}3712{GS}400PO-5521", {"kind": "gs1", "batch_lot": "B-77", "count": 12, "order_number": "PO-5521"}),
        ("]C100376104250021234569", {"kind": "sscc", "sscc": "376104250021234569"}),
        ("5901234123457", {"kind": "gtin", "gtin": "5901234123457"}),
        (f"]C1{G}17261200", {"kind": "gs1", "expiry": "2026-12-31"}),
        ("https://id.gs1.org/01/09501101020917/10/LOT42?17=261231", {"kind": "gs1", "gtin": "09501101020917", "batch_lot": "LOT42", "expiry": "2026-12-31"}),
        ("]C0WO-2024-0042", {"kind": "work_order", "scan_work_order": "WO-2024-0042", "symbology": "code128"}),
        ("(01)09501101020917(17)261231(10)AB", {"kind": "gs1", "batch_lot": "AB", "expiry": "2026-12-31"}),
    ],
)
def test_clean_vectors(raw, expect):
    rec = decode(raw)
    assert rec["errors"] == []
    assert {k: rec[k] for k in expect} == expect


def test_bad_gtin_check_digit():
    rec = decode("5901234123458")
    assert rec["gtin"] is None
    assert rec["error_codes"] == ["gtin_check_digit"]
    assert "Expected 7" in rec["errors"][0]


def test_invalid_expiry_date():
    rec = decode(f"]C1{G}17261331")
    assert rec["kind"] == "gs1" and rec["expiry"] is None
    assert rec["errors"] and "17" in rec["errors"][0]


def test_gtin_check_digit_inside_message_is_an_error():
    rec = decode("]C10109501101020918")
    assert "gtin_check_digit" in rec["error_codes"]


def test_configured_separator():
    rec = Decoder(ScanSettings(separators=["^"])).fields(f"{G}10LOTX^21S1")
    assert (rec["batch_lot"], rec["serial"], rec["errors"]) == ("LOTX", "S1", [])


def test_unconfigured_caret_is_recovered_and_flagged():
    rec = Decoder(ScanSettings()).fields(f"{G}10LOTX^21S1")
    assert (rec["batch_lot"], rec["serial"]) == ("LOTX", "S1")
    assert rec["error_codes"] == ["separator_substituted"]


def test_caret_not_guessed_when_auto_separator_off():
    rec = Decoder(ScanSettings(auto_separator=False)).fields(f"{G}10LOTX^21S1")
    assert rec["batch_lot"] is None and rec["error_codes"] == ["gs1_invalid"]


def test_missing_gs_is_flagged():
    # Lot "AB" swallowed AI 17 and AI 21: a valid message, but its lot is wrong.
    rec = decode(f"]C1{G}10AB1725123121S1")
    assert rec["batch_lot"] == "AB1725123121S1"
    assert rec["error_codes"] == ["missing_gs"]


def test_lot_with_digits_is_not_flagged():
    assert decode(f"]C1{G}10LOT-2024-0042")["errors"] == []


@pytest.mark.parametrize(
    "hex_, uri, extra",
    [
        ("3074257BF7194E4000001A85", "urn:epc:id:sgtin:0614141.812345.6789", {"gtin": "80614141123458", "epc_filter": 3, "serial": "6789"}),
        ("3114257BF4499602D2000000", "urn:epc:id:sscc:0614141.1234567890", {"epc_filter": 0}),
    ],
)
def test_epc_vectors(hex_, uri, extra):
    rec = decode(hex_, hint="epc")
    assert rec["kind"] == "epc" and rec["epc_uri"] == uri and rec["errors"] == []
    assert {k: rec[k] for k in extra} == extra
    assert decode(hex_)["epc_uri"] == uri  # recognised without the hint too


def test_epc_tid_is_unknown():
    rec = decode("E2801160600002054CC2A1B5", hint="epc")
    assert rec["kind"] == "unknown" and rec["epc_uri"] is None
    assert rec["error_codes"] == ["epc_unknown_header"]
    assert rec["raw_hex"] == "E2801160600002054CC2A1B5".encode().hex()


@pytest.mark.parametrize("hex_", ["30003074257BF7194E4000001A85", "3074257BF7194E4000001A8500", "3074257BF7194E4000001A"])
def test_epc_length_is_strict(hex_):
    rec = epc_decode(hex_)
    assert rec["error_codes"] == ["epc_length"] and "epc_uri" not in rec


def test_epc_partition_and_filter_values():
    # filter 1, partition 5 (7-digit company prefix), built by hand
    value = (0x30 << 88) | (1 << 85) | (5 << 82) | (614141 << 58) | (812345 << 38) | 42
    rec = epc_decode(f"{value:024X}")
    assert rec["epc_filter"] == 1 and rec["epc_uri"] == "urn:epc:id:sgtin:0614141.812345.42"
    bad = (0x30 << 88) | (7 << 82)
    assert epc_decode(f"{bad:024X}")["error_codes"] == ["epc_partition"]


def test_patterns_commands_and_badges():
    d = Decoder(ScanSettings(patterns={"work_order": r"T(?P<work_order>\d+)/(?P<operation>\d+)", "badge": r"B(?P<badge>[0-9A-F]{8})", "lot": None, "commands": {"END!": "end"}}))
    wo = d.fields("T1234/20")
    assert (wo["kind"], wo["scan_work_order"], wo["scan_operation"]) == ("work_order", "1234", "20")
    assert d.fields("B00A1B2C3")["badge"] == "0010597059"
    assert d.fields("END!")["command"] == "end"
    assert d.fields("LOT:X")["kind"] == "unknown"


def test_gs1_symbology_skips_patterns():
    # `]C1` promises a GS1 message: a text that happens to match a pattern is still decoded as GS1.
    assert Decoder(ScanSettings(patterns={"work_order": r"\d+"})).fields(f"]C1{G}")["kind"] == "gs1"


def test_badge_forms_normalise_to_one():
    assert normalize_badge("10597059") == normalize_badge("00A1B2C3") == normalize_badge("0F00A1B2C3") == "0010597059"


def test_every_record_has_the_same_keys():
    keys = set(decode("x"))
    for v in ("]C100376104250021234569", "3074257BF7194E4000001A85", "WO-1", "5901234123458"):
        assert set(decode(v)) >= keys - {"ai", "epc_hex"}
    assert {"kind", "symbology", "gtin", "batch_lot", "serial", "expiry", "sscc", "count", "order_number", "epc_uri", "epc_filter", "errors"} <= keys


def test_cp1252_bytes():
    rec = decode(b"]C0WO-\xe42")  # ä in CP1252
    assert rec["text"] == "WO-ä2"


def test_characters_outside_cset82_are_named():
    rec = decode(f"]C1{G}10LOT-\u00dc1")
    assert rec["error_codes"] == ["gs1_invalid"] and "character set 82" in rec["errors"][0]


def test_broken_hri_reports_its_error():
    rec = decode("(01)09501101020917(17)261331")
    assert rec["kind"] == "gs1" and rec["error_codes"] == ["gs1_invalid"] and rec["expiry"] is None


def test_epc_with_pc_word_is_reported_once():
    rec = decode("30003074257BF7194E4000001A85")
    assert rec["kind"] == "unknown" and rec["error_codes"] == ["epc_length"]
