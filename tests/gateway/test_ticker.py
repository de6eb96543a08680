"""The polling ticker on a clock the test moves: no test here waits for real time."""

from __future__ import annotations

import types

import pytest

from gateway import ticker


class Clock:
    """The event loop's clock and the wall clock at once; `asyncio.sleep` moves it on."""

    def __init__(self, start: float = 1000.0):
        self.t = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    loop = types.SimpleNamespace(time=c.time)
    monkeypatch.setattr(ticker, "asyncio", types.SimpleNamespace(get_running_loop=lambda: loop, sleep=c.sleep))
    monkeypatch.setattr(ticker, "time", types.SimpleNamespace(time=c.time))
    return c


async def ticks(clock: Clock, interval: float, work: list[float]) -> list[float]:
    """Tick times (relative to the start), the consumer spending `work[i]` after tick i."""
    start, out = clock.t, []
    it = ticker.every(interval)
    for w in work:
        out.append(await anext(it) - start)
        clock.t += w
    out.append(await anext(it) - start)
    await it.aclose()
    return out


async def test_ticks_stay_on_the_grid_whatever_each_poll_costs(clock):
    # Binary fractions: the grid is exact in floating point, so equality is the honest check.
    got = await ticks(clock, 0.25, [0.0, 0.125, 0.0625, 0.2, 0.24])
    assert got == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]  # no drift: a poll's cost is not added to the period


async def test_the_first_tick_comes_at_once(clock):
    it = ticker.every(5.0)
    assert await anext(it) == clock.t and clock.sleeps == []
    await it.aclose()


async def test_a_slow_consumer_skips_missed_ticks_instead_of_bursting(clock):
    got = await ticks(clock, 0.25, [0.875, 0.0, 0.0])
    # 0.25, 0.5 and 0.75 passed during the slow poll: the next tick is the next grid point, 1.0 …
    assert got == [0.0, 1.0, 1.25, 1.5]
    # … reached by waiting, never by yielding at once to catch up.
    assert all(s > 0 for s in clock.sleeps), clock.sleeps

