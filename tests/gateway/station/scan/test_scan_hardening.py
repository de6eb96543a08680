"""What a label says, exactly: garbage that used to raise, empty scans, a missing GS anywhere, Digital
Link in upper case, wrong check digits kept out of the fields, duplicates by what the label says."""

import pytest

from gateway.model import SCAN, Reading
from gateway.station.context import Change, Context, apply
from gateway.station.scan.decode import decode
from gateway.station.scan.rules import ScanRules
from simulators.scanner import SerialScanner
from tests.conftest import InProcess, write_config

G = "0109501101020917"
GS = "\x1d"
TS = 1_750_000_000.0


@pytest.mark.parametrize(
    "raw, code",
    [
        ("]1" + GS, "aim_malformed"),  # biip's ParseError escaped
        (f"{G}30", "gs1_invalid"),  # int('') on an empty count
        (f"]C1{G}37", "gs1_invalid"),
        ("0109501101020917\u00b9", "gs1_invalid"),  # `¹` passes str.isdigit()
        ("]C1\u0660\u0661\u0660\u0669\u0665\u0660\u0661\u0661\u0660\u0661\u0660\u0662\u0660\u0669\u0661\u0667", "gs1_invalid"),  # Arabic-Indic digits
        ("https://[/01/09501101020917", "gs1_digital_link_invalid"),  # urllib's ValueError
        ("https://id.gs1.org:abc/01/09501101020917", "gs1_digital_link_invalid"),
        ("https://exa_mple.org/01/09501101020917", "gs1_digital_link_invalid"),
    ],
)
def test_garbage_gives_errors_not_exceptions(raw, code):
    rec = decode(raw)
    assert code in rec["error_codes"] and len(rec["errors"]) == len(rec["error_codes"])
    assert rec["count"] is None


def test_superscript_digits_are_no_gtin():
    # Without an AIM identifier a text of digits-that-are-not-ASCII is simply not a GS1 code.
    rec = decode("590123412345\u00b9")
    assert rec["kind"] == "unknown" and rec["gtin"] is None
    assert decode("\u0665\u0669\u0660\u0661\u0662\u0663\u0664\u0661\u0662\u0663\u0664\u0665\u0667")["gtin"] is None


@pytest.mark.parametrize("aim", ["]C1", "]d2", "]Q3", "]e0", "]E0", "]C0"])
@pytest.mark.parametrize("tail", ["", " ", GS])
def test_aim_identifier_alone_is_an_empty_scan(aim, tail):
    rec = decode(aim + tail)
    assert (rec["kind"], rec["error_codes"]) == ("unknown", ["empty_scan"])
    rules = ScanRules()
    for ctx in (Context("st"), apply(Context("st"), Change("start", "scan", work_order="WO-1"))[0]):
        v = rules.evaluate(Reading("scan", aim + tail, TS, type=SCAN), ctx, TS)
        assert (v.status, v.reason_code) == ("rejected", "empty_scan")


@pytest.mark.parametrize(
    "raw, swallowed",
    [
        (f"]d2{G}1726123110LOT121SER9", "21"),  # the pharma layout 01/17/10/21 without GS before 21
        (f"]d2{G}10LOT12112345", "21"),
        (f"]C1{G}21SN4410PO-99", "10"),  # serial swallowed the lot
        (f"]C1{G}10B-7737120", "37"),  # lot swallowed a count
        (f"]C1{G}400PO-A3102000250", "3102"),  # order number swallowed a net weight (fixed length)
        (f"]C1{G}10AB1725123121S1", "17"),
    ],
)
def test_missing_gs_found_for_any_following_ai(raw, swallowed):
    rec = decode(raw)
    assert rec["error_codes"] == ["missing_gs"], rec["errors"]
    assert f"AI ({swallowed})" in rec["errors"][0]


@pytest.mark.parametrize(
    "raw",
    [
        f"]C1{G}10LOT-2024-0042",
        f"]d2{G}10LOT12{GS}2112345",  # the same data with its GS
        f"]d2{G}2112345{GS}10LOT2112",  # AI 21 is already there: `21` inside the lot is the lot's
        f"]C1{G}10B-77{GS}3712{GS}400PO-5521",
        "https://id.gs1.org/01/09501101020917/10/LOT1211234",  # Digital Link segments delimit every value
        "(01)09501101020917(10)LOT1211234",
    ],
)
def test_no_missing_gs_where_none_is_missing(raw):
    assert decode(raw)["errors"] == []


@pytest.mark.parametrize(
    "uri",
    [
        "HTTPS://ID.GS1.ORG/01/09501101020917/10/LOT42?17=261231",
        "Https://Id.Gs1.Org/01/09501101020917/10/LOT42?17=261231",
        "hTTp://example.COM:8080/01/09501101020917/10/LOT42?17=261231",
    ],
)
def test_digital_link_scheme_and_host_are_case_insensitive(uri):
    rec = decode(uri)
    assert rec["errors"] == []
    assert (rec["kind"], rec["gtin"], rec["batch_lot"], rec["expiry"]) == ("gs1", "09501101020917", "LOT42", "2026-12-31")


def test_digital_link_path_stays_case_sensitive():
    assert decode("https://id.gs1.org/01/09501101020917/10/lot42")["batch_lot"] == "lot42"


@pytest.mark.parametrize(
    "raw, field, code",
    [
        ("]C10109501101020918", "gtin", "gtin_check_digit"),
        ("]C10109501101020918\x1d10L1", "gtin", "gtin_check_digit"),
        ("]C100376104250021234568", "sscc", "sscc_check_digit"),
        ("https://id.gs1.org/01/09501101020918", "gtin", "gtin_check_digit"),
        ("(01)09501101020918(10)L1", "gtin", "gtin_check_digit"),
        (f"]C1{G}4144012345000008", "gln", "gln_check_digit"),
    ],
)
def test_wrong_check_digit_stays_out_of_the_field(raw, field, code):
    rec = decode(raw)
    assert rec.get(field) is None
    assert code in rec["error_codes"]
    ai = {"gtin": "01", "sscc": "00", "gln": "414"}[field]
    assert rec["ai"][ai]  # kept under `ai`, as scanned


def _evaluate(rules, ctx, text, ts):
    return rules.evaluate(Reading("scan", text, ts, type=SCAN), ctx, ts)


def test_duplicates_are_keyed_on_what_the_label_says():
    rules = ScanRules()
    ctx, _ = apply(Context("st"), Change("start", "scan", work_order="WO-1"))
    forms = [
        f"]d2{G}10LOT-A{GS}1726123121SN1",  # DataMatrix
        f"]C1{G}1726123110LOT-A{GS}21SN1",  # GS1-128, other AI order
        f"]Q3{G}21SN1{GS}10LOT-A{GS}17261231",  # QR, yet another order
        "https://id.gs1.org/01/09501101020917/10/LOT-A/21/SN1?17=261231",  # Digital Link
        "(01)09501101020917(17)261231(10)LOT-A(21)SN1",  # HRI
    ]
    verdicts = [_evaluate(rules, ctx, t, TS + i).status for i, t in enumerate(forms)]
    assert verdicts == ["accepted"] + ["duplicate"] * (len(forms) - 1)
    assert _evaluate(rules, ctx, f"]d2{G}10LOT-A{GS}1726123121SN2", TS + 9).status == "accepted"  # another serial


def test_bare_gtin_and_its_gs1_form_are_one_label():
    rules = ScanRules()
    ctx, _ = apply(Context("st"), Change("start", "scan", work_order="WO-1"))
    assert _evaluate(rules, ctx, "]E05901234123457", TS).status == "accepted"
    assert _evaluate(rules, ctx, "]C10105901234123457", TS + 1).status == "duplicate"


async def test_gateway_survives_a_malformed_aim_prefix(tmp_path, broker):
    # `]1` + GS used to raise biip's ParseError out of the pipeline.
    sim = SerialScanner(tmp_path / "scanner0")
    sim.plug()
    dev = {"kind": "scanner_serial", "name": "scanner1", "port": str(tmp_path / "scanner0"), "feedback": "honeywell",
           "backoff_initial": 0.05, "backoff_max": 0.2}
    path = write_config(tmp_path, broker.port, [dev])
    async with InProcess(path) as gw:
        await gw.wait_status(lambda st: st["devices"][0]["state"] == "connected")
        for text, tone in (("]1" + GS, "bad"), ("]C1", "bad"), ("]C0WO-2024-0042", "good")):
            sim.scan(text)
            assert await sim.next_ack(10) == tone, text
        st = await gw.status()
        assert st["devices"][0]["state"] == "connected" and st["devices"][0]["outages"] == 0
    sim.unplug()
