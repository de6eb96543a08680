"""The supervisor's retry policy, with small drivers that follow the protocol."""

from __future__ import annotations

import asyncio

from gateway.capture.outbox import Outbox
from gateway.capture.supervisor import Health, backoff, supervise
from gateway.config import BufferConfig
from gateway.errors import NotConnected
from gateway.model import Reading
from tests.conftest import write_config


class Flapping:
    """Accepts the connection, then loses it before delivering anything."""

    connects = 0

    async def connect(self) -> None:
        Flapping.connects += 1

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


async def run_for(tmp_path, driver_cls, seconds: float) -> Health:
    from gateway import config
    from gateway.capture.pipeline import Pipeline

    path = write_config(tmp_path, 1, [{"kind": "synthetic", "name": "dev", "rate": 1, "backoff_initial": 0.01, "backoff_max": 0.32}])
    cfg = config.load(path)
    async with Outbox(BufferConfig(path=tmp_path / "b.db")) as box:
        health = Health("dev", "test")
        task = asyncio.create_task(supervise(cfg.devices[0], Pipeline(cfg, box), health, build=driver_cls))
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return health


async def test_a_link_that_drops_before_delivering_backs_off(tmp_path):
    health = await run_for(tmp_path, Flapping, 1.0)
    assert health.state == "down" and health.attempts >= 4  # not reset by each successful connect


async def test_a_link_that_delivered_starts_its_backoff_afresh(tmp_path):
    health = await run_for(tmp_path, Steady, 0.5)
    assert health.readings >= 6 and health.attempts == 1
