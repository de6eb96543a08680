"""The capture path's stages, with a log that only keeps what it is given."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway import config
from gateway.capture import pipeline as pipeline_mod
from gateway.capture.pipeline import INTERNAL_ERROR, Pipeline
from gateway.model import ALARM, SCAN, TELEMETRY, Reading
from gateway.station.context import Change
from tests.conftest import write_config

PRESS = {"kind": "synthetic", "name": "press", "rate": 1, "tags": 1}


class Box:
    """The log's two entries, kept in order: records ((station, device, type), record, protected,
    urgent) and context states."""

    def __init__(self) -> None:
        self.rows: list[tuple[tuple[str, str, str], dict, bool, bool]] = []
        self.contexts: list[tuple[str, dict]] = []

    def put(self, key, make, item: bytes, point=None, urgent: bool = False) -> int:
        b = make()
        self.rows.append(((b.station, b.device, b.type), {**orjson.loads(b.head), **orjson.loads(item)}, b.protected, urgent))
        return len(self.rows)

    def set_context(self, station: str, state: dict) -> int:
        self.contexts.append((station, state))
        return len(self.rows)

    def records(self, type_: str | None = None) -> list[dict]:
        return [rec for _, rec, _, _ in self.rows if type_ is None or rec["type"] == type_]


@pytest.fixture
def box() -> Box:
    return Box()


@pytest.fixture
def make(tmp_path, box):
    def make(*devices: dict) -> Pipeline:
        scanner = {"kind": "scanner_serial", "name": "scanner1", "port": str(tmp_path / "scanner0")}
        cfg = config.load(write_config(tmp_path, 1, [PRESS, scanner, *devices]))
        return Pipeline(cfg, box)

    return make


def test_telemetry_is_stamped_with_its_station_context(make, box):
    p = make()
    _, ctx = p.change("st10", Change("start", "cli", work_order="WO-1", lot="L-1"))
    ticket, outcome = p.submit(p.origins["press"], Reading("temp", 181.5, unit="degC"))
    where, rec, protected, urgent = box.rows[-1]
    assert ticket == len(box.rows) and outcome is None
    assert where == ("st10", "press", "telemetry") and not protected and not urgent
    assert (rec["value"], rec["unit"], rec["device"], rec["device_kind"]) == (181.5, "degC", "press", "synthetic")
    assert (rec["context"], rec["work_order"], rec["lot"], rec["context_id"], rec["context_version"]) == ("active", "WO-1", "L-1", ctx.context_id, ctx.version)


def test_a_context_change_is_journaled_with_its_state(make, box):
    p = make()
    p.change("st10", Change("start", "cli", work_order="WO-1", actor="cli:uid=0(root)"))
    (station, state), = box.contexts
    assert station == "st10" and state["work_order"] == "WO-1" and state["state"] == "active"
    where, rec, protected, _ = box.rows[-1]
    assert where == ("st10", "", "context") and protected
    assert (rec["event"], rec["actor"], rec["work_order"]) == ("started", "cli:uid=0(root)", "WO-1")


def test_a_scan_is_stamped_with_the_context_it_starts(make, box):
    p = make()
    ack = object()
    _, outcome = p.submit(p.origins["scanner1"], Reading("scan", "]C0WO-2024-0042", type=SCAN, raw=b"]C0WO-2024-0042", ack=ack))
    assert outcome["status"] == "accepted" and outcome["reason_code"] == "work_order_started"
    assert p.contexts["st10"].work_order == "WO-2024-0042"
    assert [r["type"] for r in box.records()] == ["context", "scan"]
    where, scan, protected, urgent = box.rows[-1]
    assert where == ("st10", "scanner1", "scan") and protected and urgent  # a scanner waits for this commit
    assert (scan["work_order"], scan["context"], scan["context_id"]) == ("WO-2024-0042", "active", p.contexts["st10"].context_id)
    assert box.records("context")[0]["actor"] == "scan:scanner1"


def test_a_scan_whose_record_cannot_be_built_changes_no_context(make, box, monkeypatch):
    p = make()
    real = pipeline_mod.encode

    def encode(rec):
        if rec["type"] == SCAN:
            raise ValueError("the encoder broke")
        return real(rec)

    monkeypatch.setattr(pipeline_mod, "encode", encode)
    _, outcome = p.submit(p.origins["scanner1"], Reading("scan", "]C0WO-2024-0042", type=SCAN, raw=b"]C0WO-2024-0042"))
    assert outcome == INTERNAL_ERROR
    assert not p.contexts["st10"].active and box.contexts == [] and box.records("context") == []
    (scan,) = box.records()
    assert (scan["status"], scan["reason_code"], scan["context"]) == ("rejected", "internal_error", "unassigned")
    assert p.scans["scanner1", "rejected"] == 1 and p.internal_errors == 1


def test_a_failing_stage_still_captures_the_reading_as_bad(make, box, monkeypatch):
    p = make()
    p.change("st10", Change("start", "cli", work_order="WO-1"))

    def stamp(*a, **kw):
        raise KeyError("stage")

    monkeypatch.setattr(pipeline_mod, "item", stamp)  # telemetry's stamping stage
    for _ in range(2):
        ticket, outcome = p.submit(p.origins["press"], Reading("t" * 300, 5, ts=1_767_225_600.0, raw=b"\x01\x02"))
    where, rec, protected, _ = box.rows[-1]
    assert ticket == len(box.rows) and outcome == INTERNAL_ERROR and outcome is not INTERNAL_ERROR
    assert where == ("st10", "press", "telemetry") and not protected
    assert (rec["quality"], rec["status"], rec["reason_code"], rec["message"]) == ("bad", "rejected", "internal_error", INTERNAL_ERROR["message"])
    assert rec["reason"] == "internal_error: KeyError: 'stage'"
    assert rec["value"] is None and rec["unit"] is None and rec["tag"] == "t" * 128
    assert rec["raw"] == base64.b64encode(b"\x01\x02").decode()
    assert rec["ts"].startswith("2026-01-01T00:00:00") and rec["work_order"] == "WO-1"
    assert p.internal_errors == 2


def test_salvage_takes_nothing_it_cannot_trust(make, box, monkeypatch):
    p = make()
    monkeypatch.setattr(pipeline_mod, "stamp", lambda *a, **kw: 1 / 0)
    p.submit(p.origins["press"], Reading("t", 1, ts=float("nan"), type="bogus", raw="not bytes"))
    where, rec, _, _ = box.rows[-1]
    assert where[1:] == ("press", "telemetry") and rec["type"] == TELEMETRY  # an unknown type goes out as telemetry
    assert rec["ts"] == rec["ingested_at"]  # a timestamp out of range is replaced by the capture time
    assert "raw" not in rec


def test_alarms_are_tracked_until_cleared(make):
    p = make()
    o = p.origins["press"]
    raised = {"alarm": "high", "state": "raised", "severity": "warning", "limit": 190}
    p.submit(o, Reading("temp", 195.0, ts=100.0, type=ALARM, fields=dict(raised)))
    p.submit(o, Reading("temp", 201.0, ts=101.0, type=ALARM, fields={**raised, "alarm": "high_high", "limit": 200}))
    assert p.alarms["press", "temp", "high"] == {"device": "press", "station": "st10", "tag": "temp", "alarm": "high",
                                                 "severity": "warning", "limit": 190, "value": 195.0, "since": 100.0}
    p.submit(o, Reading("temp", 185.0, type=ALARM, fields={"alarm": "high", "state": "cleared"}))
    assert list(p.alarms) == [("press", "temp", "high_high")]


def test_readings_are_counted_per_type_and_telemetry_is_the_rest(make):
    p = make()
    press, scanner = p.origins["press"], p.origins["scanner1"]
    for _ in range(5):
        p.submit(press, Reading("temp", 1.0))
    p.submit(press, Reading("temp", 195.0, type=ALARM, fields={"alarm": "high", "state": "raised"}))
    p.submit(scanner, Reading("scan", "]C0WO-1", type=SCAN, raw=b"]C0WO-1"))
    p.submit(scanner, Reading("scan", "]C0WO-1", type=SCAN, raw=b"]C0WO-1"))
    assert p.read == 8
    assert dict(p.counts) == {("press", ALARM): 1, ("scanner1", SCAN): 2}  # telemetry is not counted on its own
    assert p.type_counts("press", 6) == {ALARM: 1, TELEMETRY: 5}
    assert p.type_counts("scanner1", 2) == {SCAN: 2}
    assert sum(p.scans[("scanner1", s)] for s in ("accepted", "warning", "rejected", "unassigned")) == 2
