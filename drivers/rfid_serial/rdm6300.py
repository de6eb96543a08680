"""125 kHz badge readers of the RDM6300 kind: `STX + 10 ASCII-hex (2 version + 8 id) + 2 ASCII-hex XOR
checksum + ETX`. The number printed on the card is the 8-hex id as a 10-digit decimal."""

from __future__ import annotations

import re
from dataclasses import dataclass

STX, ETX = 0x02, 0x03
FRAME_LEN = 14


@dataclass(frozen=True, slots=True)
class Badge:
    raw: bytes
    card: str | None = None  # 10-digit decimal, as printed
    version: str | None = None
    error: str | None = None


HEX = re.compile(rb"[0-9A-Fa-f]{12}")


def parse(frame: bytes) -> Badge:
    if len(frame) != FRAME_LEN or frame[0] != STX or frame[-1] != ETX:
        return Badge(frame, error=f"not an RDM6300 frame ({len(frame)} bytes)")
    body = frame[1:13]
    # bytes.fromhex alone would skip blanks and control characters and yield fewer than 6 bytes
    if not HEX.fullmatch(body):
        return Badge(frame, error="non-hex characters in frame")
    values = bytes.fromhex(body.decode("ascii"))
    check = 0
    for b in values[:5]:
        check ^= b
    if check != values[5]:
        return Badge(frame, error=f"checksum mismatch: computed {check:02X}, frame says {values[5]:02X}")
    return Badge(frame, f"{int.from_bytes(values[1:5], 'big'):010d}", f"{values[0]:02X}")


class Splitter:
    """Cuts STX … ETX frames; bytes outside frames and broken frames come out with an error.

    A frame is looked for only within FRAME_LEN bytes of its STX, so each byte is examined a bounded
    number of times however the stream is garbled: an STX with no ETX in reach is a broken frame of
    the bytes up to the next STX, or of FRAME_LEN bytes.
    """

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Badge]:
        buf = self._buf
        buf += data
        out: list[Badge] = []
        i, n = 0, len(buf)
        while i < n:
            if buf[i] != STX:
                j = buf.find(STX, i)
                j = n if j < 0 else j
                out.append(Badge(bytes(buf[i:j]), error="bytes outside STX…ETX"))
                i = j
                continue
            reach = min(n, i + FRAME_LEN)
            end, nxt = buf.find(ETX, i + 1, reach), buf.find(STX, i + 1, reach)
            if nxt >= 0 and (end < 0 or nxt < end):
                out.append(parse(bytes(buf[i:nxt])))
                i = nxt
            elif end >= 0:
                out.append(parse(bytes(buf[i : end + 1])))
                i = end + 1
            elif reach - i == FRAME_LEN:
                out.append(Badge(bytes(buf[i:reach]), error="no ETX"))
                i = reach
            else:
                break  # a frame still arriving
        del buf[:i]
        return out
