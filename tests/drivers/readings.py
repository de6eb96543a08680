"""Helpers shared by the driver tests."""

from __future__ import annotations

import asyncio

from gateway.driver import each


async def take(driver, n: int, timeout: float = 5.0, where=None) -> list:
    """The next `n` readings (matching `where`) from a connected driver."""
    out = []

    async def run():
        async for got in driver.readings():
            for r in each(got):
                if where is None or where(r):
                    out.append(r)
                    if len(out) >= n:
                        return

    await asyncio.wait_for(run(), timeout)
    return out
