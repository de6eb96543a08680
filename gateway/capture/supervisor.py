"""One supervisor per device: connect, read, retry with backoff and jitter, track health.

Drivers hold device logic only. Here: timeouts on connect, exponential backoff with jitter between
attempts, a silence watchdog, and exactly one log event per state change (connected, lost,
recovered, failed, crashed) — never one per poll or per retry.

This is the containment boundary of a device: whatever a driver (or a library under it) raises, of
any type, ends here. The device is marked `crashed` with the exception's type and message, the
traceback is logged once per crash episode, the driver is closed and rebuilt after a backoff, and no
other device notices. Only cancellation (a stop) leaves a supervisor.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.capture.pipeline import Pipeline
from gateway.driver import each
from gateway.errors import BackOff, ConfigError, DriverFatal, NotConnected, Traced, describe

log = structlog.get_logger("gateway.capture.supervisor")


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
    crashes: int = 0
    error: dict[str, Any] | None = None  # the last crash: type, message, when
    traced: Traced = field(default_factory=Traced)  # crash sites whose traceback is logged
    # The driver's own counters (framing errors, CRC errors …): totals of the drivers closed so far,
    # plus the live dict of the one running, so the figures survive reconnects.
    totals: Counter = field(default_factory=Counter)
    live: dict[str, int] | None = None
    # Achieved poll periods per poll group (gateway.ops.metrics.Histogram), for drivers that poll: the
    # device's own dict is handed to each driver built, so the figures last across reconnects.
    periods: dict[str, Any] = field(default_factory=dict)
    retry_at: float | None = None  # when the next attempt starts, while waiting out a backoff
    samples: deque = field(default_factory=lambda: deque(maxlen=11))  # (time, readings), one a second

    def sample(self, now: float) -> None:
        self.samples.append((now, self.readings))

    def rate(self) -> float | None:
        """Readings per second over the last ten seconds."""
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return round((n1 - n0) / (t1 - t0), 2) if t1 > t0 else None

    def poll_period(self) -> dict[str, float]:
        """Mean achieved period per poll group, in seconds."""
        return {g: round(h.sum / n, 4) for g, h in self.periods.items() if (n := sum(h.counts))}

    def counters(self) -> dict[str, int]:
        out = Counter(self.totals)
        if self.live:
            out.update(self.live)
        return dict(out)

    def adopt(self, driver: Any) -> None:
        """Follow the counters of a newly built driver (an attribute `counters: dict[str, int]`)."""
        c = getattr(driver, "counters", None)
        self.live = c if isinstance(c, dict) else None
        if isinstance(getattr(driver, "periods", None), dict):
            driver.periods = self.periods

    def release(self) -> None:
        """The driver is closed: keep its counters in the totals."""
        if self.live:
            self.totals.update({k: v for k, v in self.live.items() if isinstance(v, int)})
        self.live = None

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
            "crashes": self.crashes,
            "error": self.error,
            "counters": self.counters(),
            "rate": self.rate(),
            "poll_period": self.poll_period(),
            "retry_in": round(max(0.0, self.retry_at - time.time()), 1) if self.retry_at else None,
        }


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with jitter in [d/2, d]: devices that failed together retry apart."""
    d = min(maximum, initial * (2 ** min(attempt, 30)))
    return random.uniform(d / 2, d)


async def supervise(cfg: Any, pipeline: Pipeline, health: Health, build=None) -> None:
    """Run one device until cancelled (or until its driver fails fatally or finishes)."""
    origin = pipeline.origins[cfg.name]
    attempt = 0
    crash_streak = 0  # crashes without a calm CALM_SECONDS between them: their backoff grows
    was_up = False
    up_since = 0.0
    while True:
        driver = None
        delay = None
        try:
            driver = (build or cfg.build)()
            health.adopt(driver)
            try:
                async with asyncio.timeout(cfg.connect_timeout):
                    await driver.connect()
            except TimeoutError:
                raise NotConnected(f"connect timed out after {cfg.connect_timeout} s") from None
            _state(health, "connected", None, recovered=was_up)
            was_up = True
            up_since = time.monotonic()
            # The backoff restarts only once the link has delivered something: a device that
            # accepts connections and drops them at once is retried ever more slowly, not in a loop.
            delivered = False
            it = driver.readings().__aiter__()
            silence = cfg.silence_timeout
            while True:
                if silence:
                    try:
                        async with asyncio.timeout(silence):
                            got = await anext(it)
                    except TimeoutError:
                        raise NotConnected(f"no reading for {silence} s") from None
                else:
                    got = await anext(it)
                if not delivered:
                    delivered, attempt = True, 0
                if type(got) is list and all(r.ack is None for r in got):  # a poll: one step for all of it
                    if got:
                        health.readings += len(got)
                        health.last_reading = got[-1].ts
                        health.bad += sum(1 for r in got if r.quality != "good")
                        pipeline.submit_many(origin, got)  # never raises, like submit()
                    continue
                for r in each(got):
                    health.readings += 1
                    health.last_reading = r.ts
                    if r.quality != "good":
                        health.bad += 1
                    # submit() never raises: a failure after the driver is captured there as a bad record.
                    ticket, outcome = pipeline.submit(origin, r)
                    if r.ack is not None:
                        await pipeline.committed(ticket)
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
        except Exception as exc:  # noqa: BLE001 - the device's containment boundary (see the module doc)
            if up_since and time.monotonic() - up_since > CALM_SECONDS:
                crash_streak = 0
            delay = backoff(crash_streak, cfg.backoff_initial, cfg.backoff_max)
            crash_streak += 1
            _crashed(health, exc)
        finally:
            if driver is not None:
                await _close(driver, health)
            health.release()
        health.retry_at = time.time() + delay
        try:
            await asyncio.sleep(delay)
        finally:
            health.retry_at = None


CALM_SECONDS = 60.0  # a driver that ran this long before crashing is restarted at the initial backoff


def _crashed(h: Health, exc: Exception) -> None:
    h.crashes += 1
    h.error = {"type": type(exc).__name__, "message": describe(exc), "at": time.time()}
    if h.state != "crashed":
        # One event per crash; the traceback only the first time this crash site is seen, so a
        # driver that crashes on every restart cannot flood the journal.
        first = h.traced.first(exc)
        log.error("device_crashed", device=h.device, kind=h.kind, error=describe(exc), crashes=h.crashes, exc_info=exc if first else None)
    _state(h, "crashed", describe(exc), quiet=True)


async def _close(driver: Any, health: Health) -> None:
    try:
        async with asyncio.timeout(5):
            await driver.aclose()
    except Exception as exc:  # noqa: BLE001 - still inside the device's boundary
        log.warning("device_close_failed", device=health.device, error=describe(exc))


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
