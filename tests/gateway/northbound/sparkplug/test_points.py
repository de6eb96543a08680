"""Records as metric values: names, datatypes, Quality and the context properties."""

from __future__ import annotations

from gateway.northbound.sparkplug.points import BOOLEAN, DOUBLE, INT32, INT64, STRING, UINT64, UNKNOWN, datatype, millis, points

TS = "2026-12-01T10:00:00.250000Z"
CTX = {"work_order": "WO-1", "lot": "LOT-A", "context_id": "c-1", "operators": ["op7"], "context": "active"}


def rec(**kw):
    return {"type": "telemetry", "ts": TS, "device": "plc1", "tag": "temp", "value": 21.5, "unit": "degC", "quality": "good", "reason": None, **CTX, **kw}


def test_datatypes_follow_the_value():
    assert [datatype(v) for v in (True, 3, 1 << 63, 2.5, "x", [1], None)] == [BOOLEAN, INT64, UINT64, DOUBLE, STRING, STRING, None]


def test_a_telemetry_record_is_one_metric_with_quality_unit_and_context():
    [p] = points(7, rec())
    assert (p.seq, p.name, p.datatype, p.value, p.ts) == (7, "temp", DOUBLE, 21.5, millis(TS))
    assert millis(TS) == 1796119200250
    assert p.props == {"Quality": (INT32, 192), "work_order": (STRING, "WO-1"), "lot": (STRING, "LOT-A"), "context_id": (STRING, "c-1"), "engUnit": (STRING, "degC")}


def test_quality_bad_0_uncertain_500_and_the_reason_travels():
    [bad] = points(1, rec(value=None, quality="bad", reason="timeout"))
    assert bad.value is None and bad.datatype == UNKNOWN and bad.props["Quality"] == (INT32, 0) and bad.props["reason"] == (STRING, "timeout")
    [unc] = points(2, rec(quality="uncertain", reason="truncated"))
    assert unc.props["Quality"] == (INT32, 500)


def test_an_unassigned_record_has_null_context_properties():
    [p] = points(1, rec(work_order=None, lot=None, context_id=None))
    assert p.props["work_order"] == (STRING, None) and p.props["context_id"] == (STRING, None)


def test_lists_travel_as_json_text():
    [p] = points(1, rec(value=[1, 2]))
    assert (p.datatype, p.value) == (STRING, "[1,2]")


def test_scans_and_alarms_go_in_folders_with_their_verdict():
    [scan] = points(3, rec(type="scan", device="wedge1", tag="barcode", value="(01)0950", status="accepted", reason_code=None, unit=None))
    assert (scan.name, scan.datatype, scan.value) == ("Scans/wedge1/barcode", STRING, "(01)0950")
    assert scan.props["status"] == (STRING, "accepted") and "engUnit" not in scan.props
    [alarm] = points(4, rec(type="alarm", alarm="high", state="raised", limit=80, severity="warning", value=85.0))
    assert (alarm.name, alarm.datatype, alarm.value) == ("Alarms/plc1/temp/high", BOOLEAN, True)
    assert alarm.props["value"] == (DOUBLE, 85.0) and alarm.props["limit"] == (STRING, "80")


def test_a_context_event_is_one_metric_per_field():
    ctx = {"type": "context", "ts": TS, "station": "st10", "event": "started", "source": "cli", "state": "active", "operation": "OP10", **CTX}
    by_name = {p.name: p.value for p in points(9, ctx)}
    assert by_name == {"Context/State": "active", "Context/Event": "started", "Context/Work Order": "WO-1", "Context/Operation": "OP10",
                       "Context/Lot": "LOT-A", "Context/Operators": "op7", "Context/ID": "c-1"}
