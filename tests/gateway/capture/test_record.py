"""Stamping and encoding, field by field: `Reading + Context -> record`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson

from gateway.capture.record import SCHEMA, Origin, context_event, context_fields, encode, head, item, stamp, wire
from gateway.model import SCAN, Reading
from gateway.station.context import Change, Context, apply

ORIGIN = Origin("gw-1", "plant1", "assembly", "line1", "st10", "press1", "modbus")
T = 1_767_225_600.25  # 2026-01-01T00:00:00.25Z
NOW = T + 2


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def active(**kw) -> Context:
    ctx, _ = apply(Context("st10"), Change("start", "cli", work_order="WO-1", operation="OP10", lot="L-7", operators=("op-1",), **kw), T - 60)
    return ctx


def decoded(rec: dict) -> dict:
    return orjson.loads(wire(42, encode(rec), b"{}"))


def test_head_and_item_make_the_same_record_as_stamp():
    """Telemetry is stored split; the JSON sink joins head and item into what `stamp` makes."""
    r = Reading("temp", 181.5, ts=T, unit="degC", raw=b"\x01", fields={"station": "forged", "register": 40001})
    ctx = active()
    whole = stamp(r, ORIGIN, ctx, NOW)
    joined = orjson.loads(wire(5, encode(head("telemetry", ORIGIN, ctx, NOW)), encode(item(r))))
    assert joined.pop("seq") == 5
    assert joined == {k: v for k, v in decoded(whole).items() if k != "seq"}
    assert joined["station"] == "st10" and joined["register"] == 40001  # a field never overrides the origin


def test_a_reading_is_stamped_field_by_field():
    r = Reading("press_temperature", 181.5, ts=T, unit="degC")
    ctx = active()
    rec = stamp(r, ORIGIN, ctx, NOW)
    assert rec == {
        "gateway_id": "gw-1", "schema": SCHEMA, "type": "telemetry", "ts": at(T), "ingested_at": at(NOW),
        "site": "plant1", "area": "assembly", "line": "line1", "station": "st10", "device": "press1", "device_kind": "modbus",
        "tag": "press_temperature", "value": 181.5, "unit": "degC", "quality": "good", "reason": None,
        "context": "active", "context_id": ctx.context_id, "context_version": 1, "work_order": "WO-1", "operation": "OP10",
        "lot": "L-7", "operators": ["op-1"],
    }
    assert "raw" not in rec


def test_a_station_without_a_work_order_stamps_unassigned_and_keeps_its_operators():
    ended, _ = apply(active(), Change("end", "cli"), T - 1)
    fields = context_fields(ended)
    assert fields == {"context": "unassigned", "context_id": None, "context_version": 2, "work_order": None, "operation": None,
                      "lot": None, "operators": ["op-1"]}


def test_an_idle_context_with_leftovers_never_lends_them_to_a_record():
    # Whatever an idle context still holds (restored from a file, say), readings there are unassigned.
    idle = Context("st10", state="idle", context_id="c-old", version=5, work_order="WO-OLD", lot="L-OLD")
    fields = context_fields(idle)
    assert (fields["context"], fields["context_id"], fields["work_order"], fields["lot"]) == ("unassigned", None, None, None)
    assert fields["context_version"] == 5


def test_raw_bytes_fields_and_outcome():
    r = Reading("scan", "]C0WO-1", ts=T, type=SCAN, raw=b"]C0WO-1\r", fields={"kind": "traveler", "tag": "not this", "quality": "nor this"})
    rec = stamp(r, ORIGIN, Context("st10"), NOW, {"status": "accepted", "reason_code": None, "quality": "uncertain"})
    assert rec["raw"] == base64.b64encode(b"]C0WO-1\r").decode()
    assert rec["kind"] == "traveler"
    assert rec["tag"] == "scan"  # a driver's field never overrides a record field …
    assert (rec["status"], rec["reason_code"]) == ("accepted", None)
    assert rec["quality"] == "uncertain"  # … the pipeline's outcome does


def test_a_context_event_is_its_own_record():
    ctx = active()
    ended, (ev,) = apply(ctx, Change("end", "mes", reason="shift over", actor="mes:cmd-7"), T)
    rec = context_event(ev, ORIGIN, NOW)
    assert rec == {
        "gateway_id": "gw-1", "schema": SCHEMA, "type": "context", "ts": at(NOW), "ingested_at": at(NOW),
        "site": "plant1", "area": "assembly", "line": "line1", "station": "st10",
        "event": "ended", "source": "mes", "actor": "mes:cmd-7", "reason": "shift over", "state": "idle",
        "context": "unassigned", "context_id": ctx.context_id, "context_version": 2, "work_order": "WO-1", "operation": "OP10",
        "lot": "L-7", "operators": ["op-1"], "started_at": at(T - 60), "ended_at": at(T),
    }
    assert "device" not in rec  # a station's event, not a device's


def test_a_started_event_has_no_end():
    _, (ev,) = apply(Context("st10"), Change("start", "cli", work_order="WO-2"), T)
    rec = context_event(ev, ORIGIN, NOW)
    assert (rec["event"], rec["context"], rec["started_at"], rec["ended_at"]) == ("started", "active", at(T), None)


def test_wire_puts_seq_first():
    stored = encode(stamp(Reading("t", 1, ts=T), ORIGIN, Context("st10"), NOW))
    published = wire(7, stored, b"{}")
    assert published.startswith(b'{"seq":7,"gateway_id":"gw-1",')
    rec = orjson.loads(published)
    assert rec["seq"] == 7 and rec["ts"] == "2026-01-01T00:00:00.250000Z" and rec["ingested_at"].endswith("Z")


def test_values_json_holds_are_kept_as_they_are():
    value = {"recipe": "RCP-1", "steps": [1, 2.5, None, True], 3: "non-text key"}
    rec = decoded(stamp(Reading("t", value, ts=T), ORIGIN, Context("st10"), NOW))
    assert rec["value"] == {"recipe": "RCP-1", "steps": [1, 2.5, None, True], "3": "non-text key"}
    assert rec["quality"] == "good" and rec["reason"] is None


def test_a_value_json_cannot_hold_becomes_text_and_the_record_bad():
    rec = decoded(stamp(Reading("t", {1, 2}, ts=T), ORIGIN, active(), NOW))
    assert rec["value"] == "{1, 2}"
    assert rec["quality"] == "bad" and rec["reason"] == "value of type set is not JSON; kept as text"
    assert rec["work_order"] == "WO-1" and rec["tag"] == "t"  # the rest of the record is untouched


def test_a_field_json_cannot_hold_becomes_text_too():
    rec = decoded(stamp(Reading("t", 1, ts=T, fields={"when": object}), ORIGIN, Context("st10"), NOW))
    assert rec["when"] == repr(object) and rec["quality"] == "bad"


# --- a poll's items encoded in one call are each item encoded alone ---------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gateway.capture.record import encode_all  # noqa: E402
from tests.drivers.fuzz import fuzz  # noqa: E402

TRICKY = st.sampled_from(["},{", "}\n{", '"},{"', "{", "}", ",", "\\", "\u2028", "\udcff", ""])
TEXT = st.one_of(st.text(max_size=12), TRICKY, st.lists(TRICKY, max_size=4).map("".join))
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)
VALUE = st.one_of(JSONISH, st.builds(complex, st.floats(0, 1)), st.sets(st.integers(0, 3), max_size=2))


@fuzz
@given(st.lists(st.fixed_dictionaries({"tag": TEXT, "value": VALUE, "unit": st.one_of(st.none(), TEXT),
                                       "quality": st.sampled_from(["good", "bad"]), "reason": st.one_of(st.none(), TEXT),
                                       "ts": st.just(datetime(2026, 12, 2, 3, 0, 0, 123456, tzinfo=UTC))}), max_size=25))
def test_fuzz_encode_all_is_encode_item_by_item(items):
    def outcome(f):
        try:
            return f()
        except TypeError:  # text JSON cannot hold (a lone surrogate): the pipeline salvages the reading
            return TypeError

    assert outcome(lambda: encode_all(items)) == outcome(lambda: [encode(it) for it in items])
