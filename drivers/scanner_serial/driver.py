"""Serial scanner driver: frames → scan readings; the reading's `ack` sends good/bad feedback.

Invariants:
- Every byte received ends up in a reading: a scan (quality good) or a framing fault (quality bad,
  reason, raw bytes). A partial scan is dropped only after `partial_timeout` of silence or when the
  link is lost, and is then emitted as a bad reading and counted in `counters["stale_partials"]`.
- `counters` (shown by `status`, kept across reconnects by the supervisor): `scans`, `framing_errors`
  (garbage, over-long or unprefixed frames), `stale_partials`, `feedback_sent`, `feedback_lost`.
- Feedback is written only through the connection that exists when the ack comes; if the scanner was
  unplugged in between, the feedback is counted as lost, never raised into the pipeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import serial
import serial_asyncio_fast

from drivers.scanner_serial.config import ScannerSerialConfig
from drivers.scanner_serial.framing import Frame, Framer
from gateway.kit import SCAN, Feedback, NotConnected, Outcome, Reading, fanout, text_of, tone

READ_SIZE = 4096


class ScannerSerial:
    def __init__(self, cfg: ScannerSerialConfig, outputs: list[Feedback] | None = None):
        self.cfg = cfg
        # Other feedback outputs (stack light, screen, MQTT event) driven by every scan of this scanner.
        self.outputs: list[Feedback] = list(outputs or [])
        self.counters = {"scans": 0, "framing_errors": 0, "stale_partials": 0, "feedback_sent": 0, "feedback_lost": 0}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = self._new_framer()

    def _new_framer(self) -> Framer:
        c = self.cfg
        return Framer(c.framing, c.suffix.encode("latin-1"), c.prefix.encode("latin-1"), c.max_length)

    async def connect(self) -> None:
        c = self.cfg
        try:
            self._reader, self._writer = await serial_asyncio_fast.open_serial_connection(
                url=str(c.port), baudrate=c.baudrate, bytesize=c.bytesize, parity=c.parity, stopbits=c.stopbits
            )
        except (serial.SerialException, OSError) as exc:
            raise NotConnected(f"{c.port}: {exc}") from exc
        self._framer = self._new_framer()

    async def readings(self) -> AsyncIterator[Reading]:
        reader, framer = self._reader, self._framer
        if reader is None:
            raise NotConnected("not connected")
        ack = self._ack_for(self._writer)
        while True:
            try:
                if framer.partial:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), self.cfg.partial_timeout)
                else:
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                yield self._reading(framer.drop_partial(), ack)
                continue
            except (serial.SerialException, OSError) as exc:
                # What the port delivered before it failed is still in the stream's buffer (asyncio
                # raises the error first): scans in it count, and a half scan is reported, not lost.
                for frame in framer.feed(_buffered(reader)):
                    yield self._reading(frame, ack)
                lost = framer.drop_partial()
                if lost:
                    yield self._reading(lost, ack)
                raise NotConnected(f"{self.cfg.port}: {exc}") from exc
            if not data:
                lost = framer.drop_partial()
                if lost:
                    yield self._reading(lost, ack)
                raise NotConnected(f"{self.cfg.port}: the port closed (unplugged?)")
            for frame in framer.feed(data):
                yield self._reading(frame, ack)

    def _reading(self, frame: Frame, ack) -> Reading:
        now = time.time()
        text = text_of(frame.data)
        if frame.error is None:
            self.counters["scans"] += 1
            return Reading(self.cfg.tag, text, now, type=SCAN, raw=frame.data, ack=ack)
        self.counters["stale_partials" if frame.error.startswith("partial") else "framing_errors"] += 1
        return Reading(self.cfg.tag, text, now, "bad", reason=frame.error, type=SCAN, raw=frame.data, ack=ack)

    def _ack_for(self, writer: asyncio.StreamWriter | None):
        codes = self.cfg.feedback_bytes

        async def ack(outcome: Outcome) -> None:
            if codes is not None:
                self._send(writer, codes[0] if tone(outcome) == "good" else codes[1])
            if self.outputs:
                await fanout(*self.outputs)(outcome)

        return ack

    def _send(self, writer: asyncio.StreamWriter | None, data: bytes) -> None:
        if writer is None or writer is not self._writer or writer.is_closing():
            self.counters["feedback_lost"] += 1
            return
        try:
            writer.write(data)
        except (serial.SerialException, OSError):
            self.counters["feedback_lost"] += 1
            return
        self.counters["feedback_sent"] += 1

    async def aclose(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()

    def health(self) -> dict[str, Any]:
        return dict(self.counters)


def _buffered(reader: asyncio.StreamReader) -> bytes:
    """Bytes the stream received and nobody read yet; StreamReader.read raises a stored error
    before handing them out. (`_buffer` is the StreamReader's bytearray, unchanged since 3.4.)"""
    buf = getattr(reader, "_buffer", None)
    if not buf:
        return b""
    data = bytes(buf)
    buf.clear()
    return data
