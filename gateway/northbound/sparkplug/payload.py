"""Sparkplug B payloads, built with the protobuf classes generated from Eclipse Tahu's sparkplug_b.proto."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.northbound.sparkplug.catalog import Metric
from gateway.northbound.sparkplug.points import BOOLEAN, DOUBLE, INT32, INT64, STRING, UINT64, Point
from gateway.northbound.sparkplug.sparkplug_b_pb2 import Payload

BD_SEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
# Where each datatype's value goes in a Metric or PropertyValue; signed integers travel as their
# two's complement in the unsigned field (as Tahu does).
FIELD = {INT32: "int_value", INT64: "long_value", UINT64: "long_value", DOUBLE: "double_value", BOOLEAN: "boolean_value", STRING: "string_value"}
MASK = {INT32: 0xFFFFFFFF, INT64: 0xFFFFFFFFFFFFFFFF}


def _set(target: Any, datatype: int, value: Any) -> None:
    if value is None:
        target.is_null = True
        return
    mask = MASK.get(datatype)
    setattr(target, FIELD[datatype], value & mask if mask else value)


def _props(target: Any, props: dict[str, tuple[int, Any]]) -> None:
    ps = target.properties
    for key, (datatype, value) in props.items():
        ps.keys.append(key)
        pv = ps.values.add()
        pv.type = datatype
        _set(pv, datatype, value)


def nbirth(bd_seq: int, ts: int) -> bytes:
    p = Payload(timestamp=ts, seq=0)
    p.metrics.add(name=BD_SEQ, timestamp=ts, datatype=UINT64, long_value=bd_seq)
    p.metrics.add(name=REBIRTH, timestamp=ts, datatype=BOOLEAN, boolean_value=False)
    return p.SerializeToString()


def ndeath(bd_seq: int, ts: int) -> bytes:
    """The Will: exactly one metric, bdSeq, and no seq."""
    p = Payload(timestamp=ts)
    p.metrics.add(name=BD_SEQ, timestamp=ts, datatype=UINT64, long_value=bd_seq)
    return p.SerializeToString()


def dbirth(seq: int, ts: int, metrics: Iterable[Metric]) -> bytes:
    p = Payload(timestamp=ts, seq=seq)
    for m in metrics:
        pm = p.metrics.add(name=m.name, alias=m.alias, timestamp=m.ts or ts, datatype=m.datatype)
        _set(pm, m.datatype, m.value)
        if m.props:
            _props(pm, m.props)
    return p.SerializeToString()


def ddata(seq: int, ts: int, values: Iterable[tuple[int, Point, dict[str, tuple[int, Any]]]], historical: bool) -> bytes:
    """A data message: (alias, point, the properties to send with it) per value, no names."""
    p = Payload(timestamp=ts, seq=seq)
    for alias, pt, props in values:
        pm = p.metrics.add(alias=alias, timestamp=pt.ts)
        if historical:
            pm.is_historical = True
        _set(pm, pt.datatype, pt.value)
        if props:
            _props(pm, props)
    return p.SerializeToString()


def ddeath(seq: int, ts: int) -> bytes:
    return Payload(timestamp=ts, seq=seq).SerializeToString()


def rebirth_asked(data: bytes) -> bool:
    """Whether an NCMD asks for a rebirth. Raises on a payload that is not Sparkplug B."""
    p = Payload.FromString(data)
    return any(m.name == REBIRTH and m.HasField("boolean_value") and m.boolean_value for m in p.metrics)
