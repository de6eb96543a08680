"""The metrics learned from records, per device, with aliases unique across the edge node.

A device's birth lists every metric it has reported in this process; a record with a metric the
catalog does not know yet, or with a value of another datatype, makes the device born again before
its data (its birth then lists the new metric or datatype). Aliases stay the same for the life of
the process, across sessions and rebirths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.northbound.sparkplug.points import DOUBLE, INT64, UINT64, UNKNOWN, Point


@dataclass(slots=True)
class Metric:
    name: str
    alias: int
    datatype: int
    value: Any = None  # the last value sent; what a birth says the metric is now
    ts: int = 0
    props: dict[str, tuple[int, Any]] = field(default_factory=dict)  # the last properties sent


class Catalog:
    def __init__(self) -> None:
        self.devices: dict[str, dict[str, Metric]] = {}
        self._alias = 0  # bdSeq and Node Control/Rebirth are never aliased: start above 0 anyway

    def admit(self, device: str, p: Point) -> tuple[Metric, bool]:
        """The metric of `p`, and whether its device must be born (again) before `p` is sent.
        An integer for a Double metric is sent as a Double rather than changing the metric."""
        metrics = self.devices.setdefault(device, {})
        m = metrics.get(p.name)
        if m is None:
            self._alias += 1
            m = metrics[p.name] = Metric(p.name, self._alias, p.datatype or DOUBLE)
            p.datatype = m.datatype
            return m, True
        if p.datatype in (UNKNOWN, m.datatype):
            p.datatype = m.datatype
            return m, False
        if m.datatype == DOUBLE and p.datatype in (INT64, UINT64):
            p.value, p.datatype = float(p.value), DOUBLE
            return m, False
        m.datatype, m.value = p.datatype, None  # the old value is not of the new type
        return m, True

    def sent(self, m: Metric, p: Point) -> None:
        m.value, m.ts, m.props = p.value, p.ts, p.props  # props dicts are shared, never changed
