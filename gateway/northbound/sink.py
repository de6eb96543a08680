"""What a northbound sink is, seen from the capture log: a small Protocol, no base class.

A sink reads the log through its own `Feed` (one durable cursor per sink), sends what it reads in
its own encoding, and says what the far end acknowledged. The log keeps a record until every sink
that must carry it has acknowledged it (or dead-lettered it with a reason) and the journal's
retention lets it go; so a sink that is down holds back only its own cursor, never capture or
another sink.

A sink:
- runs `run(feed)` as a task for the life of the gateway; it connects, reconnects with a backoff,
  and contains its own faults (a bug costs a reconnect, never the capture);
- calls `feed.rewind()` when its connection drops: what was handed out and not acknowledged is
  handed out again (at least once; consumers drop duplicates by (gateway_id, seq));
- reports `health()` (a JSON-able dict with at least `state`, `since` and `reason`), shown in
  `status` and on /metrics;
- may say goodbye on a clean stop (`goodbye()`, bounded by the caller).

Its config class (in gateway.northbound.registry) builds it: `build(cfg) -> Sink`, with the whole
gateway configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class Chunk:
    """Records `first`..`last` (contiguous seqs) of one device and one type, committed together.

    Stored neutral: `head` is a JSON object with the fields every record of the chunk shares (origin,
    type, ingest time, station context); `items` holds one JSON object per record, newline-separated
    (JSON text never contains a raw newline), in seq order, with the fields of that record alone (tag,
    value, unit, quality, reason, ts, and a scan's decoded fields and outcome). A record is
    `{"seq": seq, **head, **item}`.
    """

    first: int
    last: int
    type: str
    station: str
    device: str  # "" for the station's own records (context events)
    at: float  # ingest time, unix seconds
    head: bytes
    items: bytes

    def __len__(self) -> int:
        return self.last - self.first + 1

    def lines(self) -> list[bytes]:
        """One JSON object per record, in seq order (record `first + i` is `lines()[i]`)."""
        return self.items.split(b"\n")

    def header(self) -> dict[str, Any]:
        return orjson.loads(self.head)

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(seq, record) for each record, fields of the item over those of the head."""
        head = orjson.loads(self.head)
        for i, line in enumerate(self.lines()):
            yield self.first + i, {**head, **orjson.loads(line)}


class Feed(Protocol):
    """One sink's view of the capture log: everything committed after its durable cursor."""

    name: str

    async def next(self, limit: int) -> list[Chunk]:
        """Committed chunks not yet handed out, in seq order, at most about `limit` records; waits
        until there is at least one. Chunks the sink must not carry (another sink's requeued dead
        letters) are skipped. Handed-out records are in flight until acknowledged or dead-lettered."""
        ...

    def ack(self, first: int, last: int) -> None:
        """The far end acknowledged records `first`..`last` (they may be part of a chunk)."""
        ...

    def dead(self, first: int, last: int, reason: str) -> None:
        """The far end refused records `first`..`last` for good: dead-letter them for this sink."""
        ...

    def rewind(self) -> None:
        """The connection dropped: hand out again everything not acknowledged."""
        ...

    def recall(self, key: str) -> str | None:
        """A value this sink saved with `remember` (kept in the log's file, across restarts)."""
        ...

    def remember(self, key: str, value: str) -> None:
        """Save a small value of this sink's (e.g. Sparkplug's bdSeq); durable with the next commit."""
        ...

    async def sync(self) -> None:
        """Return once what `remember` saved is in the file (a commit)."""
        ...

    @property
    def backlog(self) -> int:
        """Records committed and not yet acknowledged (nor dead-lettered) by this sink."""
        ...


class Sink(Protocol):
    name: str

    async def run(self, feed: Feed) -> None: ...

    def health(self) -> dict[str, Any]: ...

    async def goodbye(self) -> None: ...
