"""Records through the real capture log, put the way gateway.capture.pipeline queues them, and read
the way a sink does (its feed)."""

from __future__ import annotations

import asyncio
import time

import orjson

from gateway.capture.feed import Reader
from gateway.capture.log import Batch, Log

STATION = "st10"


def telemetry(box: Log, n: int, item: bytes = b'{"tag":"t","value":1}', device: str = "press") -> int:
    """Queue `n` telemetry records of one device under one context (they join one batch)."""

    def make() -> Batch:
        now = time.time()
        h = orjson.dumps({"type": "telemetry", "station": STATION, "device": device, "context_id": None})
        return Batch("telemetry", STATION, device, None, False, h, [], now, len(h), [])

    ticket = -1
    for _ in range(n):
        ticket = box.put((device, None, 0), make, item, ("t", 1, None, True))
    return ticket


def scan(box: Log, code: str, device: str = "reader") -> int:
    """Queue one scan: a protected record kept whole, its own row."""
    now = time.time()
    data = orjson.dumps({"type": "scan", "station": STATION, "device": device, "value": code})
    return box.put(None, lambda: Batch("scan", STATION, device, None, True, data, [], now, len(data)), b"{}", None, True)


async def fill(box: Log, n: int, item: bytes = b'{"tag":"t","value":1}', per: int = 10) -> None:
    """Commit `n` telemetry records, `per` to a commit (so, a chunk)."""
    for i in range(0, n, per):
        telemetry(box, min(per, n - i), item)
        await box.flush()


def seqs(chunks) -> list[int]:
    return [s for c in chunks for s in range(c.first, c.last + 1)]


async def take(feed: Reader, limit: int = 100_000) -> list[int]:
    """The seqs a sink is handed next (now in flight); fails if nothing comes."""
    async with asyncio.timeout(5):
        return seqs(await feed.next(limit))


def inflight(feed: Reader) -> int:
    return sum(b - a + 1 for a, b, _ in feed.inflight)


async def drain(feed: Reader) -> list[int]:
    """Everything committed for this sink and not yet handed out (now in flight)."""
    out: list[int] = []
    while feed.backlog > inflight(feed):
        out += await take(feed)
    return out


async def until(cond, timeout: float = 10.0, what: str = "") -> None:
    """Wait for `cond()` to hold."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or cond}") from None
