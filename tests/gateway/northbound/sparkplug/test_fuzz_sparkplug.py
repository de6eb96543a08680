"""What arrives from the network (NCMD, STATE) and odd records: random input is refused or
expressed, never an unexpected exception. Settings as every fuzz test (tests/drivers/fuzz.py)."""

from __future__ import annotations

import orjson
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from gateway.northbound.sparkplug import payload as pl
from gateway.northbound.sparkplug.config import SparkplugConfig
from gateway.northbound.sparkplug.points import points
from gateway.northbound.sparkplug.sink import SparkplugSink
from tests.drivers.fuzz import fuzz

JSON = st.recursive(st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 63) - 1) | st.floats(allow_nan=False) | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=8)


@fuzz
@given(st.binary(max_size=200))
def test_random_ncmd_payloads_are_a_rebirth_request_or_refused(data):
    try:
        assert pl.rebirth_asked(data) in (True, False)
    except DecodeError:
        pass


class Msg:
    topic, retain = "spBv1.0/STATE/scada", False

    def __init__(self, payload: bytes):
        self.payload = payload


@fuzz
@given(st.one_of(st.binary(max_size=100), JSON.map(orjson.dumps), st.fixed_dictionaries({"online": JSON, "timestamp": JSON}).map(orjson.dumps)))
def test_random_state_payloads_change_the_host_state_only_when_well_formed(data):
    sink = SparkplugSink(SparkplugConfig(host="h", group_id="g", primary_host_id="scada"), "n", {})
    sink._on_state(None, None, Msg(data))
    host = sink.host
    assert isinstance(host["online"], bool) and isinstance(host["timestamp"], int)


@fuzz
@given(st.dictionaries(st.sampled_from(["type", "ts", "device", "tag", "value", "unit", "quality", "reason", "alarm", "state", "status", "event"]), JSON))
def test_odd_records_become_points_or_a_listed_refusal(rec):
    # KeyError, ValueError and TypeError dead-letter the record (sink._points); nothing else may come.
    try:
        for p in points(1, rec):
            assert isinstance(p.name, str)
    except (KeyError, ValueError, TypeError):
        pass
