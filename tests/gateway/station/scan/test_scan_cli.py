"""`shopfloor-gateway decode` as a real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]


def decode(*args):
    p = subprocess.run([sys.executable, "-m", "gateway", "decode", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr


def test_hex_value_with_gs():
    raw = "]d2010950110102091710ABC123\x1d1725123121SN0001".encode()
    rc, rec, _ = decode("--hex", raw.hex())
    assert rc == 0
    assert (rec["kind"], rec["batch_lot"], rec["expiry"], rec["serial"], rec["errors"]) == ("gs1", "ABC123", "2025-12-31", "SN0001", [])
    assert rec["raw_hex"] == raw.hex()


def test_errors_listed_and_check_flag():
    rc, rec, _ = decode("--check", "5901234123458")
    assert rc == 1 and rec["errors"] and rec["gtin"] is None
    rc, rec, _ = decode("3114257BF4499602D2000000")
    assert rc == 0 and rec["epc_uri"] == "urn:epc:id:sscc:0614141.1234567890" and rec["epc_filter"] == 0


def test_station_settings_from_config(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text(
        "gateway: {id: g, site: s, area: a, line: l, stations: [{name: st1, scan: {separators: ['^'], patterns: {work_order: 'TRV(?P<work_order>\\d+)'}}}]}\n"
        "mqtt: {host: 127.0.0.1}\n"
    )
    rc, rec, err = decode("-c", str(cfg), "TRV77")
    assert (rc, rec["kind"], rec["scan_work_order"]) == (0, "work_order", "77"), err
    rc, rec, _ = decode("-c", str(cfg), "010950110102091710LOTX^21S1")
    assert (rec["batch_lot"], rec["serial"], rec["errors"]) == ("LOTX", "S1", [])


def test_bad_hex_is_a_usage_error():
    rc, rec, err = decode("--hex", "zz")
    assert rc == 2 and rec is None and "hex" in err
