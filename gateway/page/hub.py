"""Fan-out of page events to the browsers that watch a station.

The pipeline publishes from its own call stack, so publishing never waits: each client has a
bounded queue, and a client whose queue is full is dropped (its browser reconnects and starts
again from a snapshot). A slow browser costs itself its connection, never a reading its capture.
"""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger("gateway.page")
QUEUE = 256  # events a client may lag behind before it is dropped


class Client:
    def __init__(self, station: str, size: int = QUEUE):
        self.station = station
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(size)
        self.dropped = False

    def offer(self, frame: bytes) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.drop()

    def drop(self) -> None:
        """End this client's stream: empty its queue and leave the end mark (None) in it."""
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self) -> bytes | None:
        return await self.queue.get()


class Hub:
    def __init__(self) -> None:
        self.clients: set[Client] = set()
        self.dropped = 0

    def join(self, station: str, size: int = QUEUE) -> Client:
        c = Client(station, size)
        self.clients.add(c)
        return c

    def leave(self, c: Client) -> None:
        self.clients.discard(c)

    def stations(self) -> set[str]:
        return {c.station for c in self.clients}

    def publish(self, station: str, frame: bytes) -> None:
        for c in list(self.clients):
            if c.station != station or c.dropped:
                continue
            c.offer(frame)
            if c.dropped:
                self.dropped += 1
                self.clients.discard(c)
                log.warning("page_client_dropped", station=station, queue=c.queue.maxsize)


def frame(event: str, data: bytes) -> bytes:
    """One server-sent event; `data` is JSON, which has no raw newline."""
    return b"event: %s\ndata: %s\n\n" % (event.encode(), data)
