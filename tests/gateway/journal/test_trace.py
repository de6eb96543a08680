"""Trace queries on a journal file: backward (lot, order), forward (material batch), operator sessions,
and completeness (delivered, buffered, dead-lettered, discarded with the seq ranges)."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.journal import trace
from tests.gateway.journal.rows import Writer, create

T0 = 1_790_000_040.0  # a minute boundary
OP = "0000000042"
GTIN = "09506000134352"


def ro(path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def scan(w: Writer, station: str, at: float, status: str = "accepted", batch: str = "B-7", serial: str = "S1", **extra) -> int:
    item = {"tag": "scan", "value": f"]d201{GTIN}10{batch}21{serial}", "kind": "gs1", "gtin": GTIN, "batch_lot": batch, "serial": serial,
            "expiry": "2027-06-30", "status": status, "reason_code": "ok" if status == "accepted" else "not_in_bom", "message": "m", **extra}
    return w.readings("scan", station, "scanner1", at, [item], kind="scanner_serial")


def temps(w: Writer, station: str, start: float, values: list[float]) -> list[int]:
    return [w.readings("telemetry", station, "plc1", start + 10 * i, [{"tag": "temp", "value": v, "unit": "degC", "quality": "good"},
                                                                       {"tag": "speed", "value": 100 + i, "unit": "rpm", "quality": "good"}])
            for i, v in enumerate(values)]


@pytest.fixture
def journal(tmp_path):
    """st10 runs WO-1/LOT-A (c1) then WO-1/LOT-C (c3); st20 runs WO-2/LOT-B (c2); batch B-7 goes into both stations."""
    path = tmp_path / "journal.sqlite3"
    conn = create(path)
    w = Writer(conn)
    facts: dict = {}
    conn.execute("BEGIN")
    w.context("st10", "operator_in", T0 - 100, operators=["0000000007"])
    w.context("st10", "started", T0, context_id="c1", work_order="WO-1", operation="10", lot="LOT-A")
    w.context("st10", "operator_in", T0 + 60, operators=["0000000007", OP])
    facts["c1_first"] = w.seq
    facts["scan_ok"] = scan(w, "st10", T0 + 70)
    facts["scan_bad"] = scan(w, "st10", T0 + 80, status="rejected", batch="B-9", serial="S2")
    w.readings("scan", "st10", "scanner1", T0 + 90, [{"tag": "scan", "value": "0000000042", "kind": "badge", "status": "accepted"}], kind="scanner_serial")
    # temp over 80 in the 4th minute; the alarm says so with its limit
    values = [70.0] * 18 + [85.0] * 4 + [70.0] * 14
    seqs = temps(w, "st10", T0, values)
    facts["tele"] = seqs
    w.readings("alarm", "st10", "plc1", T0 + 180, [{"tag": "temp", "value": 85.0, "alarm": "high", "state": "raised", "limit": 80.0, "severity": "warning"}])
    w.readings("alarm", "st10", "plc1", T0 + 220, [{"tag": "temp", "value": 70.0, "alarm": "high", "state": "cleared", "limit": 80.0, "severity": "warning"}])
    w.readings("telemetry", "st10", "env1", T0 + 30, [{"tag": "humidity", "value": 41.5, "unit": "%", "quality": "good"}], kind="env_sensor")
    facts["hole"] = w.skip(5)
    w.discard(*facts["hole"], 5, T0 + 300)
    w.discard(None, None, 3, T0 + 310, policy="shed")
    w.context("st10", "operator_out", T0 + 400, operators=["0000000007"])
    w.context("st10", "ended", T0 + 600)
    w.readings("telemetry", "st20", "plc1", T0 + 5, [{"tag": "temp", "value": 20.0, "unit": "degC"}])
    w.context("st20", "started", T0 + 10, context_id="c2", work_order="WO-2", operation="20", lot="LOT-B", operators=[OP])
    facts["scan_st20"] = scan(w, "st20", T0 + 700, serial="S3")
    w.context("st10", "started", T0 + 900, context_id="c3", work_order="WO-1", operation="10", lot="LOT-C")
    scan(w, "st10", T0 + 960, batch="B-8")
    facts["end"] = w.seq - 1
    w.close()
    conn.execute("COMMIT")
    facts["path"] = path
    return facts, w


def test_lot_backward_trace(journal):
    facts, w = journal
    t = trace.query(ro(facts["path"]), "lot", "LOT-A")
    assert t["query"] == {"kind": "lot", "key": "LOT-A"}
    assert t["journal"] == {"from": T0 - 100, "to": T0 + 960}
    assert [(c["context_id"], c["work_order"], c["started_at"], c["ended_at"]) for c in t["contexts"]] == [("c1", "WO-1", T0, T0 + 600)]
    assert [(o["operator"], o["login_at"], o["logout_at"]) for o in t["operators"]] == [("0000000007", T0, T0 + 600), (OP, T0 + 60, T0 + 400)]
    assert [(m["seq"], m["status"], m["batch"], m["gtin"], m["serial"]) for m in t["materials"]] == [
        (facts["scan_ok"], "accepted", "B-7", GTIN, "S1"), (facts["scan_bad"], "rejected", "B-9", GTIN, "S2")]
    temp = next(x for x in t["tags"] if x["tag"] == "temp")
    assert (temp["unit"], temp["count"], temp["min"], temp["max"]) == ("degC", 36, 70.0, 85.0)
    assert temp["limits"] == {"low": None, "high": 80.0}
    # minutes 3 (values 85 from +180 s) and the alarm's raised..cleared
    assert temp["out_of_limits"] == [{"from": T0 + 180, "to": T0 + 240}]
    assert len(temp["series"]) == 11 and temp["series"][3] == {"t": T0 + 180, "min": 70.0, "max": 85.0, "mean": 80.0, "count": 6}
    assert temp["series"][10]["count"] == 0  # a minute without readings is shown as such, not left out
    assert [(a["alarm"], a["state"], a["limit"]) for a in t["alarms"]] == [("high", "raised", 80.0), ("high", "cleared", 80.0)]
    assert [e["tag"] for e in t["environment"]] == ["humidity"]
    assert all(x["tag"] != "humidity" for x in t["tags"])


def test_completeness_counts_every_record_and_reports_gaps(journal):
    facts, w = journal
    conn = sqlite3.connect(facts["path"])
    mid = facts["tele"][10]
    conn.execute("INSERT INTO cursors VALUES('mqtt', ?), ('northbound', ?)", (mid + 1, facts["end"]))  # each telemetry chunk holds 2 records
    conn.execute("INSERT INTO dead_letter VALUES(?, 'mqtt', 'telemetry', 0, 'too large', ?, x'7b7d')", (facts["tele"][3], T0))
    conn.commit()
    c = trace.query(ro(facts["path"]), "lot", "LOT-A")["completeness"]
    # c1: 4 context events (started, operator_in, operator_out, ended), 3 scans, 36 telemetry chunks of 2, 2 alarms, 1 env reading
    assert c["readings"] == 4 + 3 + 72 + 2 + 1
    # up to the lower cursor: started, operator_in, 3 scans, 11 telemetry chunks; one of them dead-lettered
    assert (c["delivered"], c["dead_lettered"], c["buffered"]) == (2 + 3 + 22 - 1, 1, c["readings"] - 27)
    assert c["discarded"] == 8
    first, last = facts["hole"]
    assert c["gaps"] == [{"first_seq": first, "last_seq": last, "count": 5, "policy": "drop_oldest", "at": T0 + 300},
                         {"first_seq": None, "last_seq": None, "count": 3, "policy": "shed", "at": T0 + 310}]


def test_no_sink_cursor_means_nothing_delivered(journal):
    facts, _ = journal
    c = trace.query(ro(facts["path"]), "lot", "LOT-A")["completeness"]
    assert (c["delivered"], c["buffered"]) == (0, c["readings"])


def test_order_spans_its_contexts(journal):
    facts, _ = journal
    t = trace.query(ro(facts["path"]), "order", "WO-1")
    assert [c["context_id"] for c in t["contexts"]] == ["c1", "c3"]
    assert {m["batch"] for m in t["materials"]} == {"B-7", "B-9", "B-8"}
    assert t["contexts"][1]["ended_at"] is None


def test_material_forward(journal):
    facts, _ = journal
    conn = ro(facts["path"])
    t = trace.query(conn, "material", "B-7")
    assert [(c["station"], c["work_order"], c["lot"], c["serial"], c["status"]) for c in t["consumed"]] == [
        ("st10", "WO-1", "LOT-A", "S1", "accepted"), ("st20", "WO-2", "LOT-B", "S3", "accepted")]
    assert trace.query(conn, "material", "B-7", gtin="9506000134352")["consumed"][0]["seq"] == facts["scan_ok"]
    assert trace.query(conn, "material", "B-7", gtin="04000000000000") is None
    assert trace.query(conn, "material", "NOPE") is None


def test_operator_sessions(journal):
    facts, _ = journal
    conn = ro(facts["path"])
    t = trace.query(conn, "operator", OP)
    assert [(s["station"], s["login_at"], s["logout_at"]) for s in t["sessions"]] == [("st10", T0 + 60, T0 + 400), ("st20", T0 + 10, None)]
    assert [c["context_id"] for c in t["contexts"]] == ["c1", "c2"]
    late = trace.query(conn, "operator", OP, since=T0 + 500, until=T0 + 2000)
    assert [s["station"] for s in late["sessions"]] == ["st20"]
    # a session open at `since` is followed back to its login
    early = trace.query(conn, "operator", "0000000007", since=T0 + 300, until=T0 + 350)
    assert [(s["login_at"], s["logout_at"]) for s in early["sessions"]] == [(T0 - 100, None)]
    assert trace.query(conn, "operator", "nobody") is None


def test_unknown_and_empty(tmp_path, journal):
    facts, _ = journal
    conn = ro(facts["path"])
    assert trace.query(conn, "lot", "LOT-NONE") is None
    with pytest.raises(ValueError):
        trace.query(conn, "batch", "x")
    empty = tmp_path / "empty.sqlite3"
    create(empty).close()
    assert trace.query(ro(empty), "lot", "LOT-A") is None


def test_lot_changed_mid_context_is_found_by_its_records(tmp_path):
    path = tmp_path / "j.sqlite3"
    conn = create(path)
    w = Writer(conn)
    w.context("st10", "started", T0, context_id="c9", work_order="WO-9", lot="LOT-OLD")
    scan(w, "st10", T0 + 10)
    w.context("st10", "updated", T0 + 20, lot="LOT-NEW")
    w.close()
    conn.commit()
    t = trace.query(ro(path), "lot", "LOT-OLD")
    assert [c["context_id"] for c in t["contexts"]] == ["c9"] and t["contexts"][0]["lot"] == "LOT-NEW"


def test_seq_at_bisects_ingest_time(journal):
    facts, _ = journal
    j = trace.Journal(ro(facts["path"]))
    assert j.seq_at(0) == 1_000_000
    assert j.seq_at(T0 + 10_000) == facts["end"] + 1
    s = j.seq_at(T0 + 400)
    assert j.record(s)["event"] == "operator_out"


def test_order_changeover_minute_is_one_point(tmp_path):
    """Two contexts of one order share a minute (a changeover): one point, counts and mean of both."""
    path = tmp_path / "j.sqlite3"
    conn = create(path)
    w = Writer(conn)
    w.context("st10", "started", T0, context_id="a", work_order="WO-7", lot="L1")
    w.readings("telemetry", "st10", "plc1", T0 + 10, [{"tag": "temp", "value": 10.0}])
    w.readings("telemetry", "st10", "plc1", T0 + 20, [{"tag": "temp", "value": "n/a", "quality": "bad"}])
    w.context("st10", "ended", T0 + 30)
    w.context("st10", "started", T0 + 40, context_id="b", work_order="WO-7", lot="L2")
    w.readings("telemetry", "st10", "plc1", T0 + 50, [{"tag": "temp", "value": 20.0}, {"tag": "temp", "value": 30.0}])
    w.readings("telemetry", "st10", "plc1", T0 + 70, [{"tag": "temp", "value": 40.0}])
    w.close()
    conn.commit()
    (temp,) = trace.query(ro(path), "order", "WO-7")["tags"]
    assert temp["series"] == [{"t": T0, "min": 10.0, "max": 30.0, "mean": 20.0, "count": 4},
                              {"t": T0 + 60, "min": 40.0, "max": 40.0, "mean": 40.0, "count": 1}]
    assert (temp["count"], temp["mean"]) == (5, 25.0)


# -- on journals the capture path wrote ---------------------------------------------------------

CAPTURE_GTIN = "09501101020917"


@pytest.fixture
async def captured(tmp_path):
    """Records put through the real pipeline into the real capture log: a login, a work order with a
    lot, material scans, telemetry of a PLC and of an environmental sensor, an alarm raised and
    cleared; more undelivered telemetry than the log may hold, so the overflow policy discards some."""
    from gateway import config
    from gateway.capture.log import Log
    from gateway.capture.pipeline import Pipeline
    from gateway.model import ALARM, SCAN, Reading
    from gateway.station.context import Change
    from tests.conftest import write_config

    bom = tmp_path / "bom.csv"
    bom.write_text(f"work_order,code\nWO-1,{CAPTURE_GTIN}\n")
    devices = [{"kind": "synthetic", "name": "press", "rate": 1, "tags": 1},
               {"kind": "env_sensor", "name": "room", "serial": {"port": "/dev/null"}},
               {"kind": "scanner_serial", "name": "scanner1", "port": str(tmp_path / "scanner0")}]
    gateway = {"id": "gw-test", "site": "plant1", "area": "assembly", "line": "line1", "stations": [{"name": "st10", "scan": {"bom_file": str(bom)}}]}
    cfg = config.load(write_config(tmp_path, 1, devices, gateway=gateway, buffer={"max_rows": 100, "overflow": "drop_oldest"}))
    facts: dict = {"path": cfg.buffer.path}
    async with Log(cfg.buffer, ["mqtt"], cfg.journal) as box:
        p = Pipeline(cfg, box)
        press, room, scanner = p.origins["press"], p.origins["room"], p.origins["scanner1"]
        p.change("st10", Change("login", "cli", operators=(OP,)))
        p.change("st10", Change("start", "cli", work_order="WO-1", lot="LOT-A"))
        await box.flush()
        p.submit(scanner, Reading("scan", f"]C101{CAPTURE_GTIN}10B-7", type=SCAN))
        p.submit(scanner, Reading("scan", "]E05901234123457", type=SCAN))  # not in the BOM
        await box.flush()
        for i in range(60):
            p.submit(press, Reading("temp", 70.0 + i % 3, unit="degC"))
            await box.flush()  # one chunk each: the overflow policy discards whole chunks
        p.submit(room, Reading("humidity", 41.5, unit="%"))
        p.submit(press, Reading("temp", 85.0, unit="degC", type=ALARM, reason="temp 85.0 above high limit 80.0",
                                fields={"alarm": "high", "state": "raised", "limit": 80.0, "severity": "warning"}))
        p.submit(press, Reading("temp", 70.0, unit="degC", type=ALARM, reason="temp 70.0 back inside high limit 80.0",
                                fields={"alarm": "high", "state": "cleared", "limit": 80.0, "severity": "warning"}))
        await box.flush()
        feed = box.feed("mqtt")
        chunks = await feed.next(10)
        facts["acked"] = (chunks[0].first, chunks[-1].last)
        feed.ack(*facts["acked"])
        for i in range(60):  # past max_rows: the oldest undelivered telemetry goes
            p.submit(press, Reading("temp", 71.0, unit="degC"))
            await box.flush()
        p.change("st10", Change("end", "cli"))
        await box.flush()
    return facts


async def test_trace_on_records_the_capture_path_wrote(captured):
    t = trace.query(ro(captured["path"]), "lot", "LOT-A")
    (ctx,) = t["contexts"]
    assert (ctx["work_order"], ctx["lot"], ctx["station"]) == ("WO-1", "LOT-A", "st10") and ctx["ended_at"] >= ctx["started_at"]
    assert [(o["operator"], o["context_id"]) for o in t["operators"]] == [(OP, ctx["context_id"])]
    assert [(m["status"], m["reason_code"], m["gtin"], m["batch"]) for m in t["materials"]] == [
        ("accepted", "ok", CAPTURE_GTIN, "B-7"), ("rejected", "not_in_bom", "5901234123457", None)]
    (temp,) = t["tags"]
    assert (temp["device"], temp["unit"], temp["limits"]) == ("press", "degC", {"low": None, "high": 80.0})
    assert [e["tag"] for e in t["environment"]] == ["humidity"] and t["environment"][0]["device"] == "room"
    assert [(a["state"], a["limit"]) for a in t["alarms"]] == [("raised", 80.0), ("cleared", 80.0)]
    assert temp["out_of_limits"] and sum(p["count"] for p in temp["series"]) == temp["count"] == 120  # minutes count every record
    c = t["completeness"]
    # the context's records: started and ended events, 2 scans, 121 readings and 2 alarms, less what the policy discarded
    assert c["readings"] == 2 + 2 + 121 + 2 - c["discarded"]
    assert c["discarded"] > 0 and all(g["policy"] == "drop_oldest" and g["first_seq"] is not None for g in c["gaps"])
    assert c["delivered"] + c["buffered"] + c["dead_lettered"] == c["readings"]
    conn = ro(captured["path"])
    for g in c["gaps"]:  # the gaps are exactly where records are missing
        assert conn.execute("SELECT count(*) FROM log WHERE last >= ? AND seq <= ?", (g["first_seq"], g["last_seq"])).fetchone()[0] == 0
    first, last = captured["acked"]
    kept = conn.execute("SELECT coalesce(sum(min(last, ?) - seq + 1), 0) FROM log WHERE context_id = ? AND seq <= ?", (last, ctx["context_id"], last)).fetchone()[0]
    assert c["delivered"] == kept


async def test_material_and_operator_on_records_the_capture_path_wrote(captured):
    conn = ro(captured["path"])
    (used,) = trace.query(conn, "material", "B-7", gtin=CAPTURE_GTIN[1:])["consumed"]
    assert (used["work_order"], used["lot"], used["status"], used["device"]) == ("WO-1", "LOT-A", "accepted", "scanner1")
    (session,) = trace.query(conn, "operator", OP)["sessions"]
    assert session["station"] == "st10" and session["logout_at"] is None  # logged in still: the order ended, the operator stayed
