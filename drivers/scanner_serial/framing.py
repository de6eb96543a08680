"""Cutting a serial byte stream into scans.

Invariants: bytes are never lost or re-ordered; every byte ends up either in a scan or in a `Frame`
with an `error` (garbage between frames, an over-long frame, a missing prefix, a stale partial).
Framing bytes (STX/ETX, prefix, suffix) are removed; everything else, AIM identifier included, is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

STX, ETX = b"\x02", b"\x03"
Mode = Literal["line", "suffix", "stx_etx"]


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    error: str | None = None


class Framer:
    """`line`: a scan ends at CR or LF (CR LF counts once); `suffix`: at the configured bytes;
    `stx_etx`: STX … ETX. A configured `prefix` must start every scan and is removed."""

    def __init__(self, mode: Mode = "line", suffix: bytes = b"\r", prefix: bytes = b"", max_len: int = 4096):
        if mode == "suffix" and not suffix:
            raise ValueError("suffix framing needs a suffix")
        self.mode, self.suffix, self.prefix, self.max_len = mode, suffix, prefix, max_len
        self._buf = bytearray()

    @property
    def partial(self) -> bytes:
        return bytes(self._buf)

    def drop_partial(self) -> Frame | None:
        """Give up the bytes of an unfinished scan (the link went quiet or was lost)."""
        if not self._buf:
            return None
        data, self._buf = bytes(self._buf), bytearray()
        return Frame(data, "partial scan dropped: no terminator arrived")

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                break
            if frame.data or frame.error:
                out.append(self._unprefix(frame))
        if len(self._buf) > self.max_len:
            data, self._buf = bytes(self._buf), bytearray()
            out.append(Frame(data, f"no terminator within {self.max_len} bytes"))
        return out

    def _next(self) -> Frame | None:
        buf = self._buf
        if self.mode == "stx_etx":
            start = buf.find(STX)
            if start > 0:
                junk = bytes(buf[:start])
                del buf[:start]
                return Frame(junk, "bytes outside STX…ETX") if junk.strip(b"\r\n") else Frame(b"")
            if start < 0:
                if buf.strip(b"\r\n") and len(buf) > 0:
                    junk = bytes(buf)
                    buf.clear()
                    return Frame(junk, "bytes outside STX…ETX")
                buf.clear()
                return None
            end = buf.find(ETX, 1)
            if end < 0:
                return None
            data = bytes(buf[1:end])
            del buf[: end + 1]
            if STX in data:  # a lost ETX: keep the broken frame as an error, restart at the new STX
                cut = data.rfind(STX)
                buf[:0] = data[cut:] + ETX
                return Frame(STX + data[:cut], "STX without ETX")
            return Frame(data)
        if self.mode == "line":
            ends = [i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0]
            if not ends:
                return None
            end = min(ends)
            data = bytes(buf[:end])
            del buf[: end + 1]
            return Frame(data)
        end = buf.find(self.suffix)
        if end < 0:
            return None
        data = bytes(buf[:end])
        del buf[: end + len(self.suffix)]
        return Frame(data)

    def _unprefix(self, frame: Frame) -> Frame:
        if frame.error or not self.prefix:
            return frame
        if frame.data.startswith(self.prefix):
            return Frame(frame.data[len(self.prefix) :])
        return Frame(frame.data, f"missing prefix {self.prefix!r}")
