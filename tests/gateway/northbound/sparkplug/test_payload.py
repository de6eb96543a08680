"""Payloads as another implementation reads them (esio-spb-builder's decoder and protobuf classes)."""

from __future__ import annotations

from esio_spb_builder.core import sparkplug_b_pb2 as spb
from esio_spb_builder.packets.builders import PacketDecoder

from gateway.northbound.sparkplug import payload as pl
from gateway.northbound.sparkplug.catalog import Metric
from gateway.northbound.sparkplug.points import DOUBLE, INT32, INT64, STRING, Point


def test_nbirth_has_seq_0_bdseq_and_an_unaliased_rebirth_metric():
    d = PacketDecoder.decode(pl.nbirth(5, 1000))
    assert d["seq"] == 0 and PacketDecoder.extract_bdseq(pl.nbirth(5, 1000)) == 5
    by_name = {m["name"]: m for m in d["metrics"]}
    assert by_name["bdSeq"]["datatype"] == spb.UInt64
    assert by_name["Node Control/Rebirth"] == {"name": "Node Control/Rebirth", "alias": None, "timestamp": 1000, "datatype": spb.Boolean, "value": False, "properties": {}}


def test_ndeath_has_exactly_bdseq_and_no_seq():
    d = PacketDecoder.decode(pl.ndeath(7, 1000))
    assert d["seq"] is None and [(m["name"], m["value"]) for m in d["metrics"]] == [("bdSeq", 7)]


def test_dbirth_lists_name_alias_datatype_value_and_properties():
    m = Metric("temp", 3, DOUBLE, 21.5, 900, {"engUnit": (STRING, "degC"), "lot": (STRING, None)})
    p = spb.Payload.FromString(pl.dbirth(4, 1000, [m, Metric("new", 4, INT64)]))
    assert p.seq == 4
    first, second = p.metrics
    assert (first.name, first.alias, first.datatype, first.double_value, first.timestamp) == ("temp", 3, spb.Double, 21.5, 900)
    assert list(first.properties.keys) == ["engUnit", "lot"]
    assert first.properties.values[0].string_value == "degC" and first.properties.values[1].is_null
    assert (second.name, second.datatype, second.is_null) == ("new", spb.Int64, True)


def test_ddata_carries_aliases_only_and_negative_integers_in_twos_complement():
    pt = Point(1, "count", INT64, -2, 1234, {"Quality": (INT32, 192)})
    p = spb.Payload.FromString(pl.ddata(9, 1000, [(5, pt, pt.props)], historical=True))
    [m] = p.metrics
    assert not m.HasField("name") and not m.HasField("datatype") and m.alias == 5 and m.is_historical
    assert m.long_value == (1 << 64) - 2 and m.properties.values[0].int_value == 192


def test_ncmd_rebirth_is_recognised_and_garbage_refused():
    p = spb.Payload()
    p.metrics.add(name="Node Control/Rebirth", datatype=spb.Boolean, boolean_value=True)
    assert pl.rebirth_asked(p.SerializeToString())
    p.metrics[0].boolean_value = False
    assert not pl.rebirth_asked(p.SerializeToString())
    try:
        pl.rebirth_asked(b"\xff\xff\xff")
    except Exception as exc:  # noqa: BLE001 - the type is the assertion
        assert type(exc).__name__ == "DecodeError"
    else:
        raise AssertionError("garbage decoded")
