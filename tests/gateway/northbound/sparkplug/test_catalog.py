"""Learned metrics: aliases unique across the node, a birth again for a new metric or datatype."""

from __future__ import annotations

from gateway.northbound.sparkplug.catalog import Catalog
from gateway.northbound.sparkplug.points import DOUBLE, INT64, STRING, UNKNOWN, Point


def pt(name, dt, value):
    return Point(1, name, dt, value, 0, {})


def test_aliases_are_unique_across_devices_and_stable():
    c = Catalog()
    a, new_a = c.admit("plc1", pt("t", DOUBLE, 1.0))
    b, new_b = c.admit("plc2", pt("t", DOUBLE, 1.0))
    again, new_again = c.admit("plc1", pt("t", DOUBLE, 2.0))
    assert new_a and new_b and not new_again
    assert a.alias != b.alias and again is a


def test_an_integer_on_a_double_metric_stays_double():
    c = Catalog()
    c.admit("plc1", pt("t", DOUBLE, 1.5))
    p = pt("t", INT64, 2)
    m, new = c.admit("plc1", p)
    assert not new and (p.datatype, p.value) == (DOUBLE, 2.0)


def test_another_datatype_means_a_new_birth_without_the_old_value():
    c = Catalog()
    m, _ = c.admit("plc1", pt("t", INT64, 1))
    c.sent(m, pt("t", INT64, 1))
    m, new = c.admit("plc1", pt("t", STRING, "x"))
    assert new and m.datatype == STRING and m.value is None


def test_a_null_takes_the_metric_type_or_double_when_new():
    c = Catalog()
    p = pt("t", UNKNOWN, None)
    m, new = c.admit("plc1", p)
    assert new and m.datatype == DOUBLE and p.datatype == DOUBLE
    c.admit("plc1", pt("s", STRING, "a"))
    q = pt("s", UNKNOWN, None)
    assert c.admit("plc1", q) == (c.devices["plc1"]["s"], False) and q.datatype == STRING
