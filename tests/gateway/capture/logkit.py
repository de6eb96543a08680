"""Putting records into a real capture log the way the pipeline does, and reading them back."""

from __future__ import annotations

import time

import orjson

from gateway.capture.log import Batch, Log


def tel(box: Log, value=1.0, device: str = "press", tag: str = "t", context: str | None = "ctx-1", version: int = 1, at: float | None = None, size: int = 0) -> int:
    """Queue one telemetry reading (joining the open chunk of its device and context)."""
    now = time.time() if at is None else at
    line = orjson.dumps({"tag": tag, "value": value, "quality": "good", "pad": "x" * size})

    def make() -> Batch:
        h = orjson.dumps({"type": "telemetry", "station": "st10", "device": device, "context_id": context, "ingested_at": now})
        return Batch("telemetry", "st10", device, context, False, h, [], now, len(h), [])

    return box.put((device, context, version), make, line, (tag, value, None, True))


def whole(box: Log, type_: str = "scan", device: str = "scanner1", urgent: bool = False, at: float | None = None, **fields) -> int:
    """Queue one record kept whole (a scan, an alarm, a context event), protected when its type is."""
    from gateway.journal.keys import interval, keys

    now = time.time() if at is None else at
    rec = {"type": type_, "station": "st10", "device": device, **fields}
    data = orjson.dumps(rec)
    protected = type_ in ("scan", "rfid", "alarm", "context")
    return box.put(None, lambda: Batch(type_, "st10", device, rec.get("context_id"), protected, data, [], now, len(data), None,
                                       keys(rec) if protected else None, interval(rec, now)), b"{}", None, urgent)


async def take(box: Log, sink: str = "mqtt", limit: int = 1_000_000) -> list[tuple[int, dict]]:
    """Every committed record the sink has not been handed yet, as (seq, record); none waits."""
    feed = box.feed(sink)
    out = []
    while True:
        chunks = await feed._take(limit)
        if not chunks:
            return out
        for c in chunks:
            out.extend(c.records())


def seqs(recs: list[tuple[int, dict]]) -> list[int]:
    return [s for s, _ in recs]
