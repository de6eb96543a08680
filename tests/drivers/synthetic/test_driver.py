"""The synthetic driver: one list per tick, like a poll, at the configured rate over time; a crash or
the limit yields what came before."""

from __future__ import annotations

import pytest

from drivers.synthetic.config import SyntheticConfig


def _driver(**kw):
    return SyntheticConfig.model_validate({"kind": "synthetic", "name": "load", **kw}).build()


async def _polls(driver, most: int = 1000) -> list[list]:
    out = []
    async for got in driver.readings():
        out.append(got)
        if len(out) >= most:
            break
    return out


async def test_a_tick_is_one_list_of_the_rate_s_share():
    polls = await _polls(_driver(rate=1000, tags=3, limit=50))
    assert all(isinstance(p, list) for p in polls)
    assert len(polls[0]) == 10  # 1,000/s in 10 ms ticks
    assert sum(map(len, polls)) == 50  # stopped at the limit
    assert [r.tag for r in polls[0][:4]] == ["tag0", "tag1", "tag2", "tag0"]


async def test_a_crash_yields_the_readings_made_before_it_first():
    d = _driver(rate=1000, tags=2, crash_every=15)
    got = []
    with pytest.raises(ZeroDivisionError, match="reading 14"):
        async for poll in d.readings():
            got.extend(poll)
    assert len(got) == 14


async def test_bad_every_marks_readings_bad_with_a_reason():
    polls = await _polls(_driver(rate=1000, bad_every=4, limit=20))
    flat = [r for p in polls for r in p]
    assert [r.quality for r in flat].count("bad") == 5
    assert all(r.reason == "synthetic fault" for r in flat if r.quality == "bad")


async def test_the_rate_holds_over_time_even_when_ticks_are_late():
    import asyncio

    loop = asyncio.get_running_loop()
    got, start = 0, None
    async for poll in _driver(rate=2000, tags=1).readings():
        now = loop.time()
        start = start or now  # the driver started before its first tick: counting from here is the lower bound
        got += len(poll)
        if now - start >= 0.3:
            break
        await asyncio.sleep(0.03)  # a consumer slower than the 10 ms tick: ticks are skipped
    assert got >= (now - start) * 2000  # what the rate owes, made up in the ticks that came
