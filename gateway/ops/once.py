"""`shopfloor-gateway run --once`: what `telegraf --test` is for a technician checking a new device.

Every enabled device is connected and read until each of its tags has been seen once (a tag comes
round again, or the device falls quiet); the records are stamped as the daemon would stamp them (with
the stations' current contexts, read from the buffer file without touching it) and printed as JSON
lines, one per record, with the topic they would go to. No broker is needed; nothing is stored.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from typing import Any

import orjson

from gateway.capture.pipeline import Pipeline
from gateway.config import Config
from gateway.ops.preflight import missing_parts
from gateway.driver import each
from gateway.errors import ConfigError, describe
from gateway.northbound.mqtt import topic

QUIET = 0.5  # a device that sent nothing for this long after its first readings has sent its round


class Collect:
    """Where the pipeline puts records in this mode: a list, not the capture log."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.rows: list[tuple[str, dict]] = []

    def put(self, key, make, item: bytes, point=None, urgent: bool = False) -> int:
        b = make()
        self.rows.append((topic(self.base, b.station, b.device, b.type), {**orjson.loads(b.head), **orjson.loads(item)}))
        return 0

    def set_context(self, station: str, state: dict) -> int:
        return 0

    async def committed(self, ticket: int) -> None:
        return None


def saved_contexts(cfg: Config) -> dict[str, dict]:
    """The stations' contexts as the buffer file holds them, read-only (a daemon may hold it)."""
    try:
        db = sqlite3.connect(f"file:{cfg.buffer.path}?mode=ro", uri=True, timeout=1)
        try:
            return {s: orjson.loads(v) for s, v in db.execute("SELECT station, state FROM context")}
        finally:
            db.close()
    except sqlite3.Error:
        return {}


async def read_round(d: Any, pipeline: Pipeline, wait: float) -> tuple[int, str | None]:
    """Read one device until each tag was seen once; return (readings, error)."""
    origin = pipeline.origins[d.name]
    driver = None
    n = 0
    try:
        driver = d.build()
        async with asyncio.timeout(d.connect_timeout):
            await driver.connect()
        seen: set[str] = set()
        it = driver.readings().__aiter__()
        while True:
            try:
                async with asyncio.timeout(QUIET if n else wait):
                    got = each(await anext(it))
            except (TimeoutError, StopAsyncIteration):
                break
            fresh = [r for r in got if r.tag not in seen]
            for r in fresh:
                seen.add(r.tag)
                pipeline.submit(origin, r)
            n += len(fresh)
            if len(fresh) < len(got):
                break
        return n, None if n else f"no reading within {wait:g} s (an event-driven device, such as a scanner, sends only when used)"
    except TimeoutError:
        return n, f"connect timed out after {d.connect_timeout} s"
    except Exception as exc:  # noqa: BLE001 - each device is reported on its own, whatever it raised
        return n, describe(exc)
    finally:
        if driver is not None:
            try:
                async with asyncio.timeout(5):
                    await driver.aclose()
            except Exception:  # noqa: BLE001 - closing a device that already failed says nothing new
                pass


async def run(cfg: Config, wait: float, out=sys.stdout, err=sys.stderr) -> int:
    problems = missing_parts(cfg)
    if problems:
        raise ConfigError(problems)
    g = cfg.gateway
    sink = Collect(f"{cfg.mqtt.topic_prefix if cfg.mqtt else 'shopfloor'}/{g.site}/{g.area}/{g.line}")
    pipeline = Pipeline(cfg, sink, saved_contexts(cfg))  # type: ignore[arg-type]
    devices = [d for d in cfg.devices if d.enabled]
    t0 = time.monotonic()
    results = await asyncio.gather(*(read_round(d, pipeline, wait) for d in devices))
    for where, rec in sink.rows:
        out.write(orjson.dumps({"topic": where, **rec}).decode() + "\n")
    out.flush()
    failed = 0
    for d, (n, error) in zip(devices, results, strict=True):
        if error and not n:
            failed += 1
        err.write(f"{d.name:<16} {d.kind:<14} {n} readings" + (f"; {error}" if error else "") + "\n")
    err.write(f"{len(sink.rows)} records from {len(devices)} devices in {time.monotonic() - t0:.1f} s\n")
    return 1 if failed else 0
