"""One supervisor per device: connect, read, retry with backoff and jitter, track health.

Drivers hold device logic only. Here: timeouts on connect, exponential backoff with jitter between
attempts, a silence watchdog, and exactly one log event per state change (connected, lost,
recovered, failed) — never one per poll or per retry.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.errors import BackOff, ConfigError, DriverFatal, NotConnected
from gateway.pipeline import Pipeline

log = structlog.get_logger("gateway.supervisor")


@dataclass
class Health:
    """What `status` shows for a device."""

    device: str
    kind: str
    state: str = "starting"  # starting, connected, down, failed, finished
    since: float = field(default_factory=time.time)
    reason: str | None = None
    last_reading: float | None = None
    readings: int = 0
    bad: int = 0
    attempts: int = 0  # failed connection attempts in the current outage
    outages: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "kind": self.kind,
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "last_reading": self.last_reading,
            "readings": self.readings,
            "bad": self.bad,
            "attempts": self.attempts,
            "outages": self.outages,
        }


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with jitter in [d/2, d]: devices that failed together retry apart."""
    d = min(maximum, initial * (2 ** min(attempt, 30)))
    return random.uniform(d / 2, d)


async def supervise(cfg: Any, pipeline: Pipeline, health: Health, build=None) -> None:
    """Run one device until cancelled (or until its driver fails fatally or finishes)."""
    origin = pipeline.origins[cfg.name]
    attempt = 0
    was_up = False
    while True:
        driver = None
        delay = None
        try:
            driver = (build or cfg.build)()
            try:
                async with asyncio.timeout(cfg.connect_timeout):
                    await driver.connect()
            except TimeoutError:
                raise NotConnected(f"connect timed out after {cfg.connect_timeout} s") from None
            _state(health, "connected", None, recovered=was_up)
            was_up = True
            # The backoff restarts only once the link has delivered something: a device that
            # accepts connections and drops them at once is retried ever more slowly, not in a loop.
            delivered = False
            it = driver.readings().__aiter__()
            silence = cfg.silence_timeout
            while True:
                if silence:
                    try:
                        async with asyncio.timeout(silence):
                            r = await anext(it)
                    except TimeoutError:
                        raise NotConnected(f"no reading for {silence} s") from None
                else:
                    r = await anext(it)
                if not delivered:
                    delivered, attempt = True, 0
                health.readings += 1
                health.last_reading = r.ts
                if r.quality != "good":
                    health.bad += 1
                ticket, outcome = pipeline.submit(origin, r)
                if r.ack is not None:
                    await pipeline.outbox.committed(ticket)
                    await r.ack(outcome or {"status": "accepted", "reason_code": None})
        except StopAsyncIteration:
            _state(health, "finished", None)
            return
        except BackOff as exc:
            delay = exc.wait
            _state(health, "down", str(exc))
        except NotConnected as exc:
            delay = backoff(attempt, cfg.backoff_initial, cfg.backoff_max)
            attempt += 1
            health.attempts = attempt
            _state(health, "down", str(exc))
        except (DriverFatal, ConfigError, ImportError) as exc:
            _state(health, "failed", str(exc))
            return
        except (OSError, ValueError, RuntimeError, LookupError, TypeError, AttributeError) as exc:
            # A bug or an unforeseen device answer in one driver must not stop the other devices:
            # the device is marked failed with the traceback logged once, and retried slowly.
            if health.state != "crashed":
                log.exception("device_crashed", device=health.device, kind=health.kind, error=repr(exc))
            _state(health, "crashed", repr(exc), quiet=True)
            delay = cfg.backoff_max
        finally:
            if driver is not None:
                await _close(driver, health)
        await asyncio.sleep(delay)


async def _close(driver: Any, health: Health) -> None:
    try:
        async with asyncio.timeout(5):
            await driver.aclose()
    except (OSError, TimeoutError, RuntimeError) as exc:
        log.warning("device_close_failed", device=health.device, error=repr(exc))


def _state(h: Health, state: str, reason: str | None, recovered: bool = False, quiet: bool = False) -> None:
    if h.state == state and h.reason == reason:
        return
    if h.state == state and state in ("down", "crashed"):
        h.reason = reason  # same outage, new wording: no new event
        return
    now = time.time()
    prev, since = h.state, h.since
    h.state, h.since, h.reason = state, now, reason
    if state == "down":
        h.outages += 1
    if quiet:
        return
    fields = {"device": h.device, "kind": h.kind}
    if state == "connected":
        h.attempts = 0
        if recovered or prev in ("down", "crashed"):
            log.info("device_recovered", **fields, down_seconds=round(now - since, 1))
        else:
            log.info("device_connected", **fields)
    elif state == "down":
        log.warning("device_lost" if prev == "connected" else "device_unreachable", **fields, reason=reason)
    elif state == "failed":
        log.error("device_failed", **fields, reason=reason)
    elif state == "finished":
        log.info("device_finished", **fields)
