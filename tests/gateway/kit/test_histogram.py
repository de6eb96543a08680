"""Recent: quantiles of the last rows, kept as runs; the same as ranking every row."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from gateway.kit.histogram import Recent
from tests.drivers.fuzz import fuzz


def _rank(values: list[float], q: float) -> float:
    ranked = sorted(values)
    return ranked[max(1, math.ceil(q * len(ranked))) - 1]


@fuzz
@given(st.lists(st.tuples(st.floats(0, 10), st.integers(1, 50)), min_size=1, max_size=200), st.integers(1, 500))
def test_quantiles_are_those_of_every_row_in_the_window(runs, limit):
    recent = Recent(limit)
    rows: list[float] = []
    for value, n in runs:
        recent.observe(value, n)
        rows.extend([value] * n)
    # The window keeps whole runs: the fewest newest runs that hold at least `limit` rows.
    kept, total = [], 0
    for value, n in reversed(runs):
        if total >= limit:
            break
        kept.append((value, n))
        total += n
    window = [v for v, n in kept for _ in range(n)]
    assert recent.rows == len(window)
    assert recent.quantiles(0.5, 0.99, 1.0) == [_rank(window, 0.5), _rank(window, 0.99), _rank(window, 1.0)]
    assert recent.quantiles(1.0) == [max(window)]


def test_a_message_of_many_rows_counts_once_per_row():
    recent = Recent(100)
    recent.observe(0.001, 98)
    recent.observe(0.5, 2)
    assert recent.quantiles(0.5, 0.98, 0.99) == [0.001, 0.001, 0.5]
