"""A drift-free interval ticker shared by every polling driver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator


async def every(interval: float) -> AsyncIterator[float]:
    """Tick every `interval` seconds on a fixed grid (of the loop's clock); yield the wall-clock time
    at each wake-up (a reading's timestamp: under load it is a little after the grid point).

    A slow consumer skips missed ticks instead of bursting to catch up, so a poll that overran does
    not trigger a storm of back-to-back polls against the device.
    """
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        now = loop.time()
        if next_at > now:
            await asyncio.sleep(next_at - now)
        yield time.time()
        next_at += interval
        now = loop.time()
        if next_at <= now:
            next_at += ((now - next_at) // interval + 1) * interval
