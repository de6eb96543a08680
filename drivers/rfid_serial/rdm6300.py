"""125 kHz badge readers of the RDM6300 kind: `STX + 10 ASCII-hex (2 version + 8 id) + 2 ASCII-hex XOR
checksum + ETX`. The number printed on the card is the 8-hex id as a 10-digit decimal."""

from __future__ import annotations

from dataclasses import dataclass

STX, ETX = 0x02, 0x03
FRAME_LEN = 14


@dataclass(frozen=True, slots=True)
class Badge:
    raw: bytes
    card: str | None = None  # 10-digit decimal, as printed
    version: str | None = None
    error: str | None = None


def parse(frame: bytes) -> Badge:
    if len(frame) != FRAME_LEN or frame[0] != STX or frame[-1] != ETX:
        return Badge(frame, error=f"not an RDM6300 frame ({len(frame)} bytes)")
    body = frame[1:13]
    try:
        values = bytes.fromhex(body.decode("ascii"))
    except ValueError:
        return Badge(frame, error="non-hex characters in frame")
    check = 0
    for b in values[:5]:
        check ^= b
    if check != values[5]:
        return Badge(frame, error=f"checksum mismatch: computed {check:02X}, frame says {values[5]:02X}")
    return Badge(frame, f"{int.from_bytes(values[1:5], 'big'):010d}", f"{values[0]:02X}")


class Splitter:
    """Cuts STX … ETX frames; bytes outside frames and broken frames come out with an error."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Badge]:
        self._buf += data
        out: list[Badge] = []
        buf = self._buf
        while buf:
            start = buf.find(bytes([STX]))
            if start != 0:
                junk = bytes(buf if start < 0 else buf[:start])
                del buf[: len(junk)]
                out.append(Badge(junk, error="bytes outside STX…ETX"))
                continue
            end = buf.find(bytes([ETX]))
            nxt = buf.find(bytes([STX]), 1)
            if 0 <= nxt < end or (end < 0 and nxt > 0):
                out.append(parse(bytes(buf[:nxt])))
                del buf[:nxt]
                continue
            if end < 0:
                if len(buf) > FRAME_LEN:
                    out.append(Badge(bytes(buf), error="no ETX"))
                    buf.clear()
                break
            out.append(parse(bytes(buf[: end + 1])))
            del buf[: end + 1]
        return out
