"""Cutting a serial byte stream into scans.

Invariants: bytes are never lost or re-ordered; every byte ends up either in a scan or in a `Frame`
with an `error` (garbage between frames, an over-long frame, a missing prefix, a stale partial).
Framing bytes (STX/ETX, prefix, suffix) are removed; everything else, AIM identifier included, is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

STX, ETX = b"\x02", b"\x03"
Mode = Literal["line", "suffix", "stx_etx"]


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    error: str | None = None


TERMINATOR = re.compile(rb"[\r\n]")
MARK = re.compile(rb"[\x02\x03]")


class Framer:
    """`line`: a scan ends at CR or LF (CR LF counts once); `suffix`: at the configured bytes;
    `stx_etx`: STX … ETX. A configured `prefix` must start every scan and is removed.

    Linear in its input: a cursor walks the buffer, which is cut once per feed, and the search for
    a terminator resumes where the previous feed's search ended (`_scanned`). `work` counts the
    bytes examined, at most three times the bytes fed (plus a few per feed).
    """

    def __init__(self, mode: Mode = "line", suffix: bytes = b"\r", prefix: bytes = b"", max_len: int = 4096):
        if mode == "suffix" and not suffix:
            raise ValueError("suffix framing needs a suffix")
        self.mode, self.suffix, self.prefix, self.max_len = mode, suffix, prefix, max_len
        self.work = 0
        self._buf = bytearray()
        self._scanned = 0  # the partial holds no terminator before this offset

    @property
    def partial(self) -> bytes:
        return bytes(self._buf)

    def drop_partial(self) -> Frame | None:
        """Give up the bytes of an unfinished scan (the link went quiet or was lost)."""
        if not self._buf:
            return None
        data, self._buf, self._scanned = bytes(self._buf), bytearray(), 0
        return Frame(data, "partial scan dropped: no terminator arrived")

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        i = 0
        step = {"line": self._line, "suffix": self._suffix, "stx_etx": self._stx_etx}[self.mode]
        while i < len(self._buf):
            frame, i = step(i)
            if frame is None:
                break
            if frame.data or frame.error:
                out.append(self._unprefix(frame))
        del self._buf[:i]
        self._scanned = max(0, self._scanned - i)
        if len(self._buf) > self.max_len:
            data, self._buf, self._scanned = bytes(self._buf), bytearray(), 0
            out.append(Frame(data, f"no terminator within {self.max_len} bytes"))
        return out

    def _search(self, rx: re.Pattern, i: int) -> int:
        """Offset of the first match of `rx` at or after i, or -1 (and the partial is marked scanned)."""
        start = max(i, self._scanned)
        m = rx.search(self._buf, start)
        if m is None:
            self.work += len(self._buf) - start
            self._scanned = len(self._buf)
            return -1
        self.work += m.start() - start + 1
        return m.start()

    def _line(self, i: int) -> tuple[Frame | None, int]:
        end = self._search(TERMINATOR, i)
        if end < 0:
            return None, i
        return Frame(bytes(self._buf[i:end])), end + 1

    def _suffix(self, i: int) -> tuple[Frame | None, int]:
        buf, n = self._buf, len(self.suffix)
        start = max(i, self._scanned)
        end = buf.find(self.suffix, start)
        if end < 0:
            self.work += len(buf) - start
            self._scanned = max(i, len(buf) - n + 1)  # a suffix may be arriving split
            return None, i
        self.work += end - start + n
        return Frame(bytes(buf[i:end])), end + n

    def _stx_etx(self, i: int) -> tuple[Frame | None, int]:
        buf = self._buf
        start = buf.find(STX, i)
        if start != i:
            # bytes before the next STX (or all of them): garbage, unless only line ends
            start = len(buf) if start < 0 else start
            self.work += start - i
            junk = bytes(buf[i:start])
            return (Frame(junk, "bytes outside STX…ETX") if junk.strip(b"\r\n") else Frame(b"")), start
        mark = self._search(MARK, i + 1)
        if mark < 0:
            return None, i
        if buf[mark] == STX[0]:  # a lost ETX: the broken frame is an error, the new STX starts again
            return Frame(bytes(buf[i:mark]), "STX without ETX"), mark
        return Frame(bytes(buf[i + 1 : mark])), mark + 1

    def _unprefix(self, frame: Frame) -> Frame:
        if frame.error or not self.prefix:
            return frame
        if frame.data == self.prefix:
            return Frame(frame.data, "empty scan: only the prefix")
        if frame.data.startswith(self.prefix):
            return Frame(frame.data[len(self.prefix) :])
        return Frame(frame.data, f"missing prefix {self.prefix!r}")
