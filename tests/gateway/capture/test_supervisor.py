"""The supervisor's retry policy, with small drivers that follow the protocol."""

from __future__ import annotations

import asyncio

from gateway.capture.log import Log
from gateway.capture.supervisor import Health, backoff, supervise
from gateway.config import BufferConfig
from gateway.errors import NotConnected
from gateway.model import Reading
from tests.conftest import eventually, write_config


class Flapping:
    """Accepts the connection, then loses it before delivering anything."""

    def __init__(self, connects: list[float]):
        self.connects = connects

    async def connect(self) -> None:
        self.connects.append(asyncio.get_running_loop().time())

    async def readings(self):
        raise NotConnected("dropped right after connecting")
        yield  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        pass


class Steady:
    """Delivers a few readings, then loses the link."""

    async def connect(self) -> None:
        pass

    async def readings(self):
        for i in range(3):
            yield Reading("t", i)
        raise NotConnected("cable pulled")

    async def aclose(self) -> None:
        pass


def test_backoff_doubles_with_jitter_up_to_the_maximum():
    for attempt, top in ((0, 0.1), (1, 0.2), (3, 0.8), (20, 5.0)):
        for _ in range(50):
            d = backoff(attempt, 0.1, 5.0)
            assert top / 2 <= d <= top


async def run_until(tmp_path, build, done) -> Health:
    """Supervise one device built by `build` until `done(health)` holds."""
    from gateway import config
    from gateway.capture.pipeline import Pipeline

    path = write_config(tmp_path, 1, [{"kind": "synthetic", "name": "dev", "rate": 1, "backoff_initial": INITIAL, "backoff_max": 0.32}])
    cfg = config.load(path)
    async with Log(BufferConfig(path=tmp_path / "b.db"), ["mqtt"]) as box:
        health = Health("dev", "test")
        task = asyncio.create_task(supervise(cfg.devices[0], Pipeline(cfg, box), health, build=build))
        try:
            await eventually(lambda: done(health) or task.done(), timeout=20, what="the supervisor to get there")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return health


INITIAL = 0.01


async def test_a_link_that_drops_before_delivering_backs_off(tmp_path):
    connects: list[float] = []
    health = await run_until(tmp_path, lambda: Flapping(connects), lambda h: h.attempts >= 5)
    assert health.state == "down" and health.attempts >= 5  # not reset by each successful connect
    # The wait before attempt n+1 is at least half of INITIAL * 2**n (the jitter's floor): it grows.
    gaps = [b - a for a, b in zip(connects, connects[1:])]
    assert all(gap >= INITIAL * 2**n / 2 for n, gap in enumerate(gaps)), gaps


async def test_a_link_that_delivered_starts_its_backoff_afresh(tmp_path):
    health = await run_until(tmp_path, Steady, lambda h: h.readings >= 6)
    assert health.readings >= 6 and health.attempts == 1
