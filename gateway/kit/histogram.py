"""Histograms kept cheaply on a hot path (a poll loop, every PUBACK), exported by gateway.ops.metrics."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable

PERIOD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # poll periods, seconds
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)  # ingest to PUBACK


class Histogram:
    """Cumulative buckets kept cheaply on the hot path; exported as a Prometheus histogram."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Iterable[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float, n: int = 1) -> None:
        """`n` observations of `value` (the records of one chunk share their ingest time)."""
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n

    def buckets(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, n in zip((*map(_float, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


def _float(x: float) -> str:
    return repr(float(x))


class Recent:
    """Quantiles of the last `rows` observations, kept as (value, count) runs: the records of one
    message share their latency, so a PUBACK costs one append, not one per record."""

    __slots__ = ("runs", "rows", "limit")

    def __init__(self, rows: int):
        self.runs: deque[tuple[float, int]] = deque()
        self.rows = 0
        self.limit = rows

    def observe(self, value: float, n: int = 1) -> None:
        self.runs.append((value, n))
        self.rows += n
        while self.rows - self.runs[0][1] >= self.limit:
            self.rows -= self.runs.popleft()[1]

    def quantiles(self, *qs: float) -> list[float]:
        """Nearest-rank quantiles (0 < q <= 1; 1 is the largest) of the observations kept, from one sort."""
        ranked = sorted(self.runs)
        out = []
        for q in qs:
            rank, seen = max(1, math.ceil(q * self.rows)), 0
            for value, n in ranked:
                seen += n
                if seen >= rank:
                    out.append(value)
                    break
        return out
