"""RFID drivers: `Cfru` polls a UHF reader with inventory commands; `Rdm6300` listens to a badge reader.

Invariants:
- Every read lands in a read window (per EPC or card id); what is reported follows `report`.
  On link loss all open windows are closed and their summaries reported before `NotConnected`.
- A frame with a bad CRC/checksum, garbage or an answer that does not add up becomes a reading with
  quality `bad`, the reason and the raw bytes, and is counted; tags decoded before the fault are kept.
- `counters` (shown by `status`, kept across reconnects by the supervisor): `reads`, `windows`,
  `crc_errors` (CRC or checksum mismatch), `framing_errors` (garbage, broken or incomplete frames),
  `bad_answers` (a reader error status or a tag list that does not add up), `missed` (unanswered
  inventories).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import serial
import serial_asyncio_fast

from drivers.rfid_serial import cfru, rdm6300
from drivers.rfid_serial.config import RfidSerialConfig
from drivers.rfid_serial.window import Window, Windows
from gateway.kit import RFID, SCAN, NotConnected, Reading, every


class _Serial:
    def __init__(self, cfg: RfidSerialConfig):
        self.cfg = cfg
        self.windows = Windows(cfg.hold, cfg.max_window)
        self.counters = {"reads": 0, "windows": 0, "crc_errors": 0, "framing_errors": 0, "bad_answers": 0, "missed": 0}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        c = self.cfg
        try:
            self._reader, self._writer = await serial_asyncio_fast.open_serial_connection(url=str(c.port), baudrate=c.effective_baudrate)
        except (serial.SerialException, OSError) as exc:
            raise NotConnected(f"{c.port}: {exc}") from exc

    async def _read(self, timeout: float | None) -> bytes:
        try:
            data = await asyncio.wait_for(self._reader.read(1024), timeout)
        except TimeoutError:  # an OSError subclass: must not count as a lost port
            raise
        except (serial.SerialException, OSError) as exc:
            raise NotConnected(f"{self.cfg.port}: {exc}") from exc
        if not data:
            raise NotConnected(f"{self.cfg.port}: the port closed (unplugged?)")
        return data

    def _bad(self, raw: bytes, reason: str, type_: str, counter: str) -> Reading:
        self.counters[counter] += 1
        return Reading(self._tag, None, time.time(), "bad", reason=reason, type=type_, raw=raw)

    async def aclose(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()


class Cfru(_Serial):
    _tag = "rfid"

    def __init__(self, cfg: RfidSerialConfig):
        super().__init__(cfg)
        self._tag = cfg.tag or "rfid"
        self._splitter = cfru.Splitter()
        self._commands = [cfru.inventory_command(cfg.address, a, scan_time=cfg.scan_time) for a in cfg.antennas] if cfg.antennas else [cfru.inventory_command(cfg.address)]

    async def readings(self) -> AsyncIterator[Reading]:
        if self._writer is None:
            raise NotConnected("not connected")
        self._splitter = cfru.Splitter()
        missed = 0
        try:
            async for _ in every(self.cfg.poll_interval):
                for command in self._commands:
                    out: list[Reading] = []
                    answered = await self._inventory(command, out)
                    for r in out:
                        yield r
                    missed = 0 if answered else missed + 1
                    if missed >= self.cfg.max_missed:
                        raise NotConnected(f"{self.cfg.port}: no answer to {missed} inventories in a row")
                for w in self.windows.close_due(time.time()):
                    if self.cfg.report != "first":
                        yield self._summary(w)
        except NotConnected:
            for w in self.windows.close_all():
                if self.cfg.report != "first":
                    yield self._summary(w)
            raise

    async def _inventory(self, command: bytes, out: list[Reading]) -> bool:
        """Send one inventory and collect its answer frames; False when the reader did not answer."""
        try:
            self._writer.write(command)
        except (serial.SerialException, OSError) as exc:
            raise NotConnected(f"{self.cfg.port}: {exc}") from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.response_timeout
        while True:
            left = deadline - loop.time()
            try:
                data = await self._read(max(left, 0))
            except TimeoutError:
                self.counters["missed"] += 1
                lost = self._splitter.drop_partial()
                if lost is not None:
                    out.append(self._bad(lost.raw, lost.error, RFID, "framing_errors"))
                return False
            for frame in self._splitter.feed(data):
                if frame.error:
                    out.append(self._bad(frame.raw, frame.error, RFID, "crc_errors" if frame.error == "CRC mismatch" else "framing_errors"))
                    if not self._splitter.partial:
                        return True  # the corrupt frame ended the answer; its status cannot be trusted
                    continue
                if frame.cmd != cfru.INVENTORY:
                    continue  # an answer to something else (e.g. a command sent by a tool): not ours
                tags, error = cfru.parse_inventory(frame)
                self._tags(frame, tags, out)
                if error:
                    out.append(self._bad(frame.raw, error, RFID, "bad_answers"))
                if frame.status != cfru.MORE:
                    return True

    def _tags(self, frame: cfru.Frame, tags: list[cfru.Tag], out: list[Reading]) -> None:
        now = time.time()
        for t in tags:
            self.counters["reads"] += 1
            epc = t.epc.hex().upper()
            w = self.windows.read(epc, now, t.rssi, t.antenna)
            if w is not None and self.cfg.report != "summary":
                fields = {"hint": "epc", "event": "arrive", "antenna": t.antenna, "rssi": t.rssi, **w.summary()}
                out.append(Reading(self._tag, epc, now, type=RFID, raw=frame.raw, fields=fields))

    def _summary(self, w: Window) -> Reading:
        self.counters["windows"] += 1
        fields = {"hint": "epc", "event": "window", **w.summary()}
        return Reading(self._tag, w.key, w.last_seen, type=RFID, raw=bytes.fromhex(w.key), fields=fields)


class Rdm6300(_Serial):
    """Badge reads are scans (type `scan`, kind badge) so that they log operators in and out."""

    def __init__(self, cfg: RfidSerialConfig):
        super().__init__(cfg)
        self._tag = cfg.tag or "badge"

    async def readings(self) -> AsyncIterator[Reading]:
        if self._reader is None:
            raise NotConnected("not connected")
        splitter = rdm6300.Splitter()
        while True:
            data = await self._read(None)
            now = time.time()
            self.windows.close_due(now)
            for badge in splitter.feed(data):
                if badge.error:
                    yield self._bad(badge.raw, badge.error, SCAN, "crc_errors" if badge.error.startswith("checksum") else "framing_errors")
                    continue
                self.counters["reads"] += 1
                # A card held to the reader repeats every ~100 ms: one scan per presentation.
                if self.windows.read(badge.card, now) is not None:
                    yield Reading(self._tag, badge.card, now, type=SCAN, raw=badge.raw, fields={"hint": "badge", "card_version": badge.version})
