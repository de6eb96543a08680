"""One sink's reader of the capture log (the `Feed` of gateway.northbound.sink).

A reader hands out committed chunks in seq order and keeps, in memory, the ranges it handed out
and the sink has not acknowledged yet. Its cursor — every record at or below it acknowledged or
dead-lettered by this sink — is the seq before the oldest unacknowledged range, or the last seq
handed out when nothing is in flight; the log writes it to the file with its next commit. After a
restart, or a `rewind()`, reading starts again after the durable cursor: at least once.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import deque
from typing import TYPE_CHECKING

from gateway.northbound.sink import Chunk

if TYPE_CHECKING:
    from gateway.capture.log import Log

LIVE_MAX = 5_000  # records of recent commits kept in memory for a caught-up reader


class Reader:
    def __init__(self, log: Log, name: str, cursor: int):
        self.log = log
        self.name = name
        self.saved: int | None = cursor  # the cursor as last committed to the file
        self.read_to = cursor  # last seq handed out
        self.inflight: list[list] = []  # [first, last, bytes per record], sorted, not overlapping
        self.backlog = 0  # records committed for this sink, not acknowledged nor dead-lettered
        self.backlog_bytes = 0
        self.acked = 0  # records acknowledged since the file was made (restored from its counters)
        self.dead_lettered = 0
        self.dropped = 0  # records the overflow policy discarded before this sink had them
        self.requeued = 0  # dead letters of this sink moved back into the log for it
        self.new = asyncio.Event()  # set by each commit that added records for this sink
        self.live: deque[Chunk] = deque()
        self.live_n = 0
        self.broken = True  # the live copy may miss committed records: read the file
        self.state: dict[str, str] = {}  # remember()/recall(), saved in the log's meta

    # -- Feed -------------------------------------------------------------------------------

    @property
    def cursor(self) -> int:
        return self.inflight[0][0] - 1 if self.inflight else self.read_to

    async def next(self, limit: int) -> list[Chunk]:
        while True:
            self.new.clear()
            chunks = await self._take(limit)
            if chunks:
                return chunks
            await self.new.wait()

    def ack(self, first: int, last: int) -> None:
        self.acked += self._settle(first, last)

    def dead(self, first: int, last: int, reason: str) -> None:
        n = self._settle(first, last)
        if n:
            self.dead_lettered += n
            self.log.dead(self.name, first, last, reason)

    def rewind(self) -> None:
        self.read_to = self.cursor
        self.inflight.clear()
        self.live.clear()
        self.live_n = 0
        self.broken = True

    def recall(self, key: str) -> str | None:
        return self.state.get(key)

    def remember(self, key: str, value: str) -> None:
        self.state[key] = value
        self.log.touch()

    async def sync(self) -> None:
        await self.log.flush()

    # -- for the log ------------------------------------------------------------------------

    def committed(self, chunks: list[Chunk]) -> None:
        """Chunks this sink carries were just committed."""
        for c in chunks:
            self.backlog += len(c)
            self.backlog_bytes += len(c.head) + len(c.items)
        n = sum(map(len, chunks))
        if self.broken:
            pass  # the next read goes to the file, which has these too
        elif self.live_n + n > LIVE_MAX:
            self.forget()
        else:
            self.live.extend(chunks)
            self.live_n += n
        self.new.set()

    def unsent(self, first: int, last: int) -> int:
        """How many of records first..last this sink has not had (none of them is in flight)."""
        c = self.cursor
        return last - max(first, c + 1) + 1 if last > c else 0

    def discarded(self, first: int, last: int, size: int) -> None:
        """The overflow policy removed records first..last (`size` bytes in all), never in flight."""
        n = self.unsent(first, last)
        if not n:
            return
        self.dropped += n
        self.backlog -= n
        self.backlog_bytes -= size * n // (last - first + 1)
        self.forget()

    def forget(self) -> None:
        """Drop the copy of recent commits: the next read goes to the file."""
        self.live.clear()
        self.live_n = 0
        self.broken = True

    def counts(self, plan) -> dict[str, int]:
        """This sink's counts as they stand once `plan` (a commit) is applied."""
        dropped = sum(self.unsent(a, b) for a, b, *_, only in plan.discards if only in (None, self.name))
        requeued = sum(len(c.chunk) for c in plan.inserted if c.only == self.name)
        return {"acked": self.acked, "dead_lettered": self.dead_lettered, "discarded": self.dropped + dropped, "requeued": self.requeued + requeued}

    def busy(self) -> tuple[int, int] | None:
        """The seq range handed out and not settled, which the overflow policy leaves alone."""
        c = self.cursor
        return (c + 1, self.read_to) if self.read_to > c else None

    # -- inside -----------------------------------------------------------------------------

    async def _take(self, limit: int) -> list[Chunk]:
        live = self.live
        while live and live[0].last <= self.read_to:
            self.live_n -= len(live.popleft())
        if not self.broken and live and live[0].first == self.read_to + 1:
            chunks = []
            n = 0
            while live and n < limit:
                c = live.popleft()
                self.live_n -= len(c)
                chunks.append(c)
                n += len(c)
        else:
            live.clear()
            self.live_n = 0
            self.broken = False  # commits from here on follow what the file read returns
            chunks = await self.log.read_after(self.name, self.read_to, limit)
        out = []
        for c in chunks:
            if c.last <= self.read_to:
                continue
            if c.first <= self.read_to:
                c = trim(c, self.read_to + 1)
            self.inflight.append([c.first, c.last, (len(c.head) + len(c.items)) / len(c)])
            self.read_to = c.last
            out.append(c)
        return out

    def _settle(self, first: int, last: int) -> int:
        """Take first..last out of the ranges in flight; return how many records that settled."""
        fl = self.inflight
        i = max(bisect_right(fl, [first, float("inf")]) - 1, 0)
        n = 0
        size = 0.0
        while i < len(fl) and fl[i][0] <= last:
            a, b, per = fl[i]
            if b < first:
                i += 1
                continue
            lo, hi = max(a, first), min(b, last)
            k = hi - lo + 1
            n += k
            size += k * per
            parts = []
            if a < lo:
                parts.append([a, lo - 1, per])
            if hi < b:
                parts.append([hi + 1, b, per])
            fl[i : i + 1] = parts
            i += len(parts)
        if n:
            self.backlog -= n
            self.backlog_bytes -= int(size)
            self.log.touch()
        return n


def trim(c: Chunk, first: int) -> Chunk:
    """The records of `c` from seq `first` on."""
    lines = c.lines()
    return Chunk(first, c.last, c.type, c.station, c.device, c.at, c.head, b"\n".join(lines[first - c.first :]))
