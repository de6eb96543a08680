"""Station rules: what each scan does to the context, and material validation."""

from datetime import UTC, datetime

import pytest

from gateway.model import RFID, SCAN, Reading
from gateway.station.context import Change, Context, ContextRefused, apply
from gateway.station.scan.config import ScanSettings
from gateway.station.scan.rules import ScanRules

G = "09501101020917"
OTHER = "05901234123457"
TS = datetime(2025, 6, 1, 12, tzinfo=UTC).timestamp()


def scan(text: str, ts: float = TS, **kw) -> Reading:
    return Reading("scan", text, ts, type=SCAN, raw=text.encode("cp1252", errors="replace"), **kw)


def run(rules: ScanRules, ctx: Context, text: str, ts: float = TS):
    v = rules.evaluate(scan(text, ts), ctx, ts)
    if v.change is not None:
        ctx, _ = apply(ctx, v.change, ts)
    return v, ctx


@pytest.fixture
def bom(tmp_path):
    p = tmp_path / "bom.yaml"
    p.write_text(f"WO-1: ['{G}']\nWO-2: ['{G}', '5901234123457']\n")
    b = tmp_path / "blocked.txt"
    b.write_text("# quality hold\nBAD-LOT\n")
    return ScanRules(ScanSettings(bom_file=p, blocked_lots_file=b))


def test_shift(bom):
    ctx = Context("st1")
    v, ctx = run(bom, ctx, f"]C101{G}10L1")
    assert (v.status, v.reason_code) == ("unassigned", "no_active_order")
    v, ctx = run(bom, ctx, "0010597059")
    assert (v.status, v.reason_code, ctx.operators) == ("accepted", "operator_login", ("0010597059",))
    v, ctx = run(bom, ctx, "]C0WO-1")
    assert v.reason_code == "work_order_started" and ctx.work_order == "WO-1"
    v, ctx = run(bom, ctx, f"]C101{G}10L1")
    assert (v.status, v.fields["batch_lot"]) == ("accepted", "L1")
    v, ctx = run(bom, ctx, f"]C101{G}10L1", TS + 5)
    assert v.status == "duplicate"
    v, ctx = run(bom, ctx, "]E05901234123457")
    assert (v.status, v.reason_code) == ("rejected", "not_in_bom")
    v, ctx = run(bom, ctx, f"]C101{G}17250531")
    assert (v.status, v.reason_code) == ("rejected", "expired")
    v, ctx = run(bom, ctx, f"]C101{G}17250601")
    assert v.status == "accepted"  # expires today: still usable
    v, ctx = run(bom, ctx, f"]C101{G}10BAD-LOT")
    assert (v.status, v.reason_code) == ("rejected", "lot_blocked")
    v, ctx = run(bom, ctx, "LOT:P-77")
    assert ctx.lot == "P-77" and v.change.action == "update"
    v, ctx = run(bom, ctx, "]C0WO-2")  # changeover
    assert ctx.work_order == "WO-2" and ctx.operators == ("0010597059",)
    v, ctx = run(bom, ctx, f"]C101{G}10L1", TS + 10)
    assert v.status == "accepted"  # same code, new order: not a duplicate
    v, ctx = run(bom, ctx, "CMD:END")
    assert v.reason_code == "work_order_ended" and not ctx.active
    v, ctx = run(bom, ctx, "0010597059")
    assert v.reason_code == "operator_logout" and ctx.operators == ()


def test_duplicate_ttl_expires(bom):
    ctx, _ = apply(Context("s"), Change("start", "scan", work_order="WO-1"))
    assert run(bom, ctx, f"{'01' + G}10L1", TS)[0].status == "accepted"
    assert run(bom, ctx, f"{'01' + G}10L1", TS + 599)[0].status == "duplicate"
    assert run(bom, ctx, f"{'01' + G}10L1", TS + 601)[0].status == "accepted"


def test_rejected_scan_is_judged_again_not_duplicate(bom):
    ctx, _ = apply(Context("s"), Change("start", "scan", work_order="WO-1"))
    assert run(bom, ctx, "]E05901234123457")[0].reason_code == "not_in_bom"
    assert run(bom, ctx, "]E05901234123457")[0].reason_code == "not_in_bom"


def test_mes_bom_and_blocked_lots_win():
    ctx, _ = apply(Context("s"), Change("start", "mes", work_order="WO-9", extra={"bom": [OTHER], "blocked_lots": [f"{OTHER},X1"]}))
    r = ScanRules()
    assert run(r, ctx, f"]C101{G}")[0].reason_code == "not_in_bom"
    assert run(r, ctx, f"]C101{OTHER}10X1")[0].reason_code == "lot_blocked"
    assert run(r, ctx, f"]C101{OTHER}10X2")[0].status == "accepted"


def test_scan_cannot_replace_mes_order():
    ctx, _ = apply(Context("s"), Change("start", "mes", work_order="WO-9"))
    v = ScanRules().evaluate(scan("WO-3"), ctx, TS)
    with pytest.raises(ContextRefused) as exc:
        apply(ctx, v.change, TS)
    assert exc.value.code == "mes_authoritative"


def test_errors_reject_soft_errors_warn():
    ctx, _ = apply(Context("s"), Change("start", "scan", work_order="WO-1"))
    r = ScanRules()
    v = r.evaluate(scan("5901234123458"), ctx, TS)
    assert (v.status, v.reason_code) == ("rejected", "gtin_check_digit")
    v = r.evaluate(scan(f"]C101{G}10AB1725123121S1"), ctx, TS)
    assert (v.status, v.reason_code) == ("warning", "missing_gs")
    v = r.evaluate(scan("hello"), ctx, TS)
    assert (v.status, v.reason_code) == ("rejected", "unknown_code")


def test_garbled_reading_is_rejected_with_raw_kept():
    ctx, _ = apply(Context("s"), Change("start", "scan", work_order="WO-1"))
    v = ScanRules().evaluate(scan("WO-\ufffd", quality="bad", reason="frame too long"), ctx, TS)
    assert (v.status, v.reason_code, v.message) == ("rejected", "garbled", "frame too long")


def test_expiry_warning_and_require_bom():
    ctx, _ = apply(Context("s"), Change("start", "scan", work_order="WO-1"))
    v = ScanRules(ScanSettings(expiry_warn_days=10)).evaluate(scan(f"]C101{G}17250605"), ctx, TS)
    assert (v.status, v.reason_code) == ("warning", "expires_soon")
    v = ScanRules(ScanSettings(require_bom=True)).evaluate(scan(f"]C101{G}"), ctx, TS)
    assert v.reason_code == "bom_unknown"


def test_rfid_reads_are_not_ttl_duplicates():
    ctx, _ = apply(Context("s"), Change("start", "scan", work_order="WO-1"))
    r = ScanRules()
    read = Reading("rfid", "3074257BF7194E4000001A85", TS, type=RFID, fields={"hint": "epc"})
    assert r.evaluate(read, ctx, TS).status == "accepted"
    v = r.evaluate(read, ctx, TS + 1)
    assert v.status == "accepted" and v.fields["epc_uri"].startswith("urn:epc:id:sgtin")


def test_csv_bom(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_text(f"work_order,code\nWO-1,{G[1:]}\n")  # GTIN-13 in the list, GTIN-14 on the label
    ctx, _ = apply(Context("s"), Change("start", "scan", work_order="WO-1"))
    assert ScanRules(ScanSettings(bom_file=p)).evaluate(scan(f"]C101{G}"), ctx, TS).status == "accepted"


def test_example_config_builds_rules(monkeypatch):
    from pathlib import Path

    from gateway.config import load

    root = Path(__file__).resolve().parents[4]
    monkeypatch.chdir(root)
    st = load(root / "config" / "scanners.yaml").gateway.stations[0]
    rules = ScanRules(st.scan)
    assert rules.bom["WO-2024-0042"] and "LOT-OLD" in rules.blocked
    ctx = Context("st10")
    v, ctx = run(rules, ctx, "WO-2024-0042/20")
    assert (ctx.work_order, ctx.operation) == ("WO-2024-0042", "20")
    v, ctx = run(rules, ctx, f"]C101{G}10LOT-B13")
    assert v.reason_code == "lot_blocked"
