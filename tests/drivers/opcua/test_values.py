"""OPC UA values to JSON: any nesting of asyncua types gives plain JSON within the caps, never a repr."""

from __future__ import annotations

import datetime
import math
import uuid

import orjson
from asyncua import ua
from hypothesis import given
from hypothesis import strategies as st

from drivers.opcua.values import DEPTH, plain
from tests.drivers.fuzz import fuzz


def walk(v, depth=0):
    """(characters of text, array elements + structure fields) of a plain value; fails on anything not JSON."""
    assert depth <= DEPTH + 1
    if v is None or isinstance(v, bool | int):
        return 0, 0
    if isinstance(v, float):
        assert math.isfinite(v)
        return 0, 0
    if isinstance(v, str):
        return len(v), 0
    if isinstance(v, list):
        parts = [walk(x, depth + 1) for x in v]
        return sum(p[0] for p in parts), len(v) + sum(p[1] for p in parts)
    assert type(v) is dict and all(type(k) is str for k in v)
    parts = [walk(x, depth + 1) for x in v.values()]
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def test_types_follow_the_opc_ua_json_encoding():
    stamp = datetime.datetime(2026, 1, 2, 3, 4, 5)
    eu = ua.EUInformation(NamespaceUri="u", UnitId=5, DisplayName=ua.LocalizedText("°C", "en"))
    value = [ua.LocalizedText("Presse", "de"), ua.QualifiedName("Press1", 2), ua.NodeId("a", 2), ua.ExpandedNodeId(7, 0),
             ua.StatusCode(ua.StatusCodes.BadSensorFailure), b"\x00\xff", stamp, uuid.UUID(int=1), ua.ServerState.Running,
             ua.Variant([ua.Variant(1), ua.Variant("a")]), eu, ua.ExtensionObject(TypeId=ua.NodeId(99, 2), Body=b"\x01"), ua.XmlElement("<a/>")]
    got, note = plain(value, 100, 100)
    assert note is None
    assert got == ["Presse", "2:Press1", "ns=2;s=a", "i=7", {"Code": ua.StatusCodes.BadSensorFailure, "Symbol": "BadSensorFailure"},
                   "00ff", "2026-01-02T03:04:05+00:00", "00000000-0000-0000-0000-000000000001", "Running", [1, "a"],
                   {"NamespaceUri": "u", "UnitId": 5, "DisplayName": "°C", "Description": None},
                   {"TypeId": "ns=2;i=99", "Body": "01"}, "<a/>"]


def test_caps_cut_and_say_so():
    got, note = plain("x" * 8_000_000, 4096, 1000)
    assert len(got) == 4096 and note == "truncated: text of 8000000 characters cut to 4096 (max_string 4096)"
    got, note = plain(list(range(5000)), 4096, 1000)
    assert got == list(range(1000)) and "array of 5000 elements cut to 1000" in note
    got, note = plain([[1.0] * 10] * 10, 100, 50)
    assert walk(got)[1] <= 50 and note
    got, note = plain([float("nan"), 1.0], 10, 10)
    assert got == [None, 1.0] and "nan" in note


def test_deep_nesting_is_cut():
    v = 1
    for _ in range(1000):
        v = ua.Variant([v])
    got, note = plain(v, 10, 10_000)
    assert "deeper" in note
    walk(got)  # asserts the depth


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=50), st.binary(max_size=50),
    st.datetimes(), st.uuids(),
    st.builds(ua.LocalizedText, st.one_of(st.none(), st.text(max_size=20)), st.one_of(st.none(), st.text(max_size=5))),
    st.builds(ua.QualifiedName, st.text(max_size=20), st.integers(0, 65535)),
    st.builds(ua.NodeId, st.integers(0, 2**32 - 1), st.integers(0, 65535)),
    st.builds(ua.NodeId, st.text(max_size=20), st.integers(0, 65535)),
    st.sampled_from([ua.StatusCode(c) for c in (0, ua.StatusCodes.BadSensorFailure, ua.StatusCodes.UncertainLastUsableValue, 0x12345678)]),
    st.sampled_from(list(ua.ServerState)),
    st.builds(ua.XmlElement, st.text(max_size=20)),
)


def variant(v):
    try:
        return ua.Variant(v)
    except ua.UaError:  # asyncua cannot type it (an empty list): a null Variant instead
        return ua.Variant()


def structures(children):
    return st.one_of(
        st.lists(children, max_size=8),
        st.lists(children, max_size=8).map(tuple),
        st.builds(variant, children),
        st.builds(ua.EUInformation, st.text(max_size=10), st.integers(0, 2**31), st.builds(ua.LocalizedText, st.text(max_size=10))),
        st.builds(ua.ExtensionObject, TypeId=st.builds(ua.NodeId, st.integers(0, 1000), st.integers(0, 5)), Body=st.none() | st.binary(max_size=30)),
        st.builds(ua.DataValue, st.builds(variant, children)),
        st.builds(ua.Range, st.floats(), st.floats()),
    )


values = st.recursive(scalars, structures, max_leaves=40)


@fuzz
@given(values, st.integers(1, 200), st.integers(1, 60))
def test_fuzz_any_value_is_json_within_the_caps(value, max_string, max_array):
    got, note = plain(value, max_string, max_array)
    orjson.dumps(got)
    text, items = walk(got)
    # hex of bytes is two characters per byte of the budget; names of enumerations and status codes
    # are not counted (short, and each one is an element or field under max_array)
    assert text <= 2 * max_string + 48 * (items + 1) and items <= max_array
    assert note is None or note.startswith(("truncated", "nan", "inf", "-inf")) or "shown as" in note
