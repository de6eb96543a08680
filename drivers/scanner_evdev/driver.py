"""Wedge scanner driver: one long-lived reader per device, decoding key events into scans.

Invariants:
- Reads happen only when the fd is readable, and `dev.read()` drains the whole batch, so cancelling
  the wait never loses an event (python-evdev #123: a cancelled `async_read_loop` step can drop one,
  and a lost Shift corrupts a scan).
- An unfinished scan is dropped after `key_timeout` of silence, or when the device goes away
  (`read()` raises ENODEV), and is emitted as a bad reading with its text; counted in `counters["stale"]`.
- `counters` (scans, stale, unmapped, empty, uncomposed) is a plain dict the decoder increments; the
  supervisor shows it in `status` and keeps the totals across reconnects.
- The device is opened by its stable path on every connect, grabbed before the first read, and the
  decoder's held-key state is reset: a key-up lost with the old device must not stick.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from evdev.ecodes import LED_CAPSL

from drivers.scanner_evdev.config import ScannerEvdevConfig
from drivers.scanner_evdev.decoder import Result, WedgeDecoder
from gateway.kit import SCAN, DriverFatal, NotConnected, Reading


def _open(path: str):
    import evdev

    return evdev.InputDevice(path)


class ScannerEvdev:
    def __init__(self, cfg: ScannerEvdevConfig, opener: Callable[[str], Any] | None = None):
        self.cfg = cfg
        self.opener = opener or _open
        self.decoder = WedgeDecoder(cfg.layout, cfg.tab, cfg.key_timeout, keymap=cfg.keymap)
        self.dev: Any = None
        self.resolved: str | None = None  # the /dev/input/eventN behind the stable path, for status
        self.counters: dict[str, int] = self.decoder.counters

    @property
    def stats(self) -> dict[str, int]:
        return self.counters

    async def connect(self) -> None:
        path = str(self.cfg.path)
        try:
            dev = self.opener(path)
        except FileNotFoundError as exc:
            raise NotConnected(f"{path}: not present (unplugged?)") from exc
        except PermissionError as exc:
            raise NotConnected(f"{path}: permission denied (add the service user to group `input` or a udev rule)") from exc
        except OSError as exc:
            raise NotConnected(f"{path}: {exc.strerror or exc}") from exc
        self.resolved = os.path.realpath(path)
        try:
            if self.cfg.grab:
                dev.grab()
            caps = self.cfg.capslock_from_led and LED_CAPSL in dev.leds()
        except OSError as exc:
            dev.close()
            if exc.errno == errno.EBUSY:
                raise DriverFatal(f"{path}: another program holds an exclusive grab on the scanner") from exc
            raise NotConnected(f"{path}: {exc.strerror or exc}") from exc
        self.dev = dev
        self.decoder.reset_device()
        self.decoder.capslock = bool(caps)

    async def readings(self) -> AsyncIterator[Reading]:
        dev, dec = self.dev, self.decoder
        if dev is None:
            raise NotConnected("not connected")
        loop = asyncio.get_running_loop()
        while True:
            wait = self.cfg.key_timeout if dec.pending else None
            if not await _readable(loop, dev.fileno(), wait):
                stale = dec.drop_partial(f"no key for {self.cfg.key_timeout} s")
                if stale:
                    yield self._reading(stale)
                continue
            try:
                events = list(dev.read())
            except BlockingIOError:
                continue
            except OSError as exc:
                lost = dec.drop_partial("device lost")
                if lost:
                    yield self._reading(lost)
                raise NotConnected(f"{self.cfg.path}: {exc.strerror or exc}") from exc
            for ev in events:
                for res in dec.feed(ev):
                    yield self._reading(res)

    def _reading(self, res: Result) -> Reading:
        raw = res.text.encode("cp1252", errors="replace")
        if res.error:
            return Reading(self.cfg.tag, res.text, res.ts, "bad", reason=res.error, type=SCAN, raw=raw)
        return Reading(self.cfg.tag, res.text, res.ts, type=SCAN, raw=raw)

    async def aclose(self) -> None:
        dev, self.dev = self.dev, None
        if dev is None:
            return
        if self.cfg.grab:
            try:
                dev.ungrab()
            except OSError:
                pass  # the device is gone; its grab went with it
        dev.close()


async def _readable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float | None) -> bool:
    """Wait until `fd` is readable (True) or `timeout` passes (False). Nothing is read here, so a
    cancelled or timed-out wait loses no event."""
    fut = loop.create_future()
    loop.add_reader(fd, lambda: fut.done() or fut.set_result(True))
    try:
        async with asyncio.timeout(timeout):
            return await fut
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
