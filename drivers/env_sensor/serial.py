"""Serial ASCII sensors: one line per reading, matched by a pattern whose named groups are the tags.

Invariants:
- A line that is not text, does not match, is too long, or holds a non-number is one bad reading per
  tag with the reason and the raw bytes; the next good line is data again. A number is a plain
  decimal (optionally with an exponent) that is finite as a float: `nan`, `inf`, `1e400`, `1_000`
  are not numbers here, whatever the pattern lets through.
- Silence is measured from the last *good* line: after `stale_after` seconds every tag gets one bad
  reading ("silent"), and the first good line after it is data again. The port itself failing (EOF,
  device unplugged) is a lost link: `NotConnected`.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator

import serial
import serial_asyncio_fast

from drivers.common.rules import Step, chain
from drivers.env_sensor.config import EnvSensorConfig
from gateway.kit import NotConnected, Reading

NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def number(text: str) -> float | None:
    """The finite float a sensor printed, or None."""
    text = text.strip()
    if not NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


class AsciiSensor:
    def __init__(self, cfg: EnvSensorConfig):
        self.cfg = cfg
        self.serial = cfg.serial
        self.rx = re.compile(cfg.serial.pattern)
        self.units = {n: (cfg.tags[n].unit if n in cfg.tags else None) for n in cfg.names()}
        self.steps: dict[str, Step] = {n: chain(cfg.tags.get(n))[0] for n in cfg.names()}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.counters = {"garbled_lines": 0, "silences": 0}

    async def connect(self) -> None:
        try:
            self.reader, self.writer = await serial_asyncio_fast.open_serial_connection(
                url=self.serial.port, baudrate=self.serial.baudrate, limit=max(self.serial.max_line * 4, 1024)
            )
        except (OSError, serial.SerialException) as exc:
            raise NotConnected(f"cannot open {self.serial.port}: {exc}") from exc

    async def readings(self) -> AsyncIterator[Reading]:
        last_good = time.monotonic()
        silent = False
        while True:
            wait = last_good + self.serial.stale_after - time.monotonic()
            try:
                line = await asyncio.wait_for(self.reader.readuntil(b"\n"), max(wait, 0.01))
            except TimeoutError:
                if not silent:
                    silent = True
                    self.counters["silences"] += 1
                    for r in self._bad(f"silent: no good line for {self.serial.stale_after:g} s", None):
                        yield r
                last_good = time.monotonic()  # wait a whole period before checking again
                continue
            except asyncio.IncompleteReadError as exc:
                raise NotConnected(f"{self.serial.port} closed") from exc
            except asyncio.LimitOverrunError:
                # an endless line without a newline: drop what is buffered and resynchronise
                junk = await self.reader.read(self.serial.max_line * 4)
                self.counters["garbled_lines"] += 1
                for r in self._bad("garbled: line too long", junk[: self.serial.max_line]):
                    yield r
                continue
            except (OSError, serial.SerialException) as exc:
                raise NotConnected(f"{self.serial.port}: {exc}") from exc
            readings = self.parse(line)
            if all(r.quality == "good" for r in readings):
                last_good, silent = time.monotonic(), False
            else:
                self.counters["garbled_lines"] += 1
            for r in readings:
                for out in self.steps[r.tag](r):
                    yield out

    def parse(self, line: bytes) -> list[Reading]:
        if len(line) > self.serial.max_line:
            return self._bad(f"garbled: line longer than {self.serial.max_line} bytes", line[: self.serial.max_line])
        try:
            text = line.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            return self._bad(f"garbled: not ASCII at byte {exc.start}", line)
        if not text:
            return []
        m = self.rx.search(text)
        if m is None:
            return self._bad("garbled: line does not match the pattern", line)
        now = time.time()
        out = []
        for name, text in m.groupdict().items():
            if text is None:
                continue
            value = number(text)
            if value is None:
                out.append(Reading(name, None, now, "bad", self.units[name], f"garbled: {text[:40]!r} is not a finite number", raw=line))
            else:
                out.append(Reading(name, value, now, "good", self.units[name]))
        return out

    def _bad(self, reason: str, raw: bytes | None) -> list[Reading]:
        now = time.time()
        return [Reading(n, None, now, "bad", u, reason, raw=raw) for n, u in self.units.items()]

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None
