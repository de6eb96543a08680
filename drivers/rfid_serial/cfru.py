"""CF-RU / UHFReader288 serial protocol: frames, CRC-16/MCRF4XX, the inventory command and its answer.

Frame: `Len Adr Cmd [Status] Data… CRC-LSB CRC-MSB`; `Len` counts the bytes after it; the CRC
(reflected polynomial 0x8408, init 0xFFFF, no final XOR) covers Len..Data. Host → reader frames have
no Status byte. Inventory answer data: `Ant(bitmask) Num {EPClen EPC RSSI}…`; status 0x03 means
more frames of the same inventory follow.
"""

from __future__ import annotations

from dataclasses import dataclass

INVENTORY = 0x01
# Answer statuses of an inventory: 0x01 done, 0x02 scan time overflow, 0x03 more frames follow,
# 0x04 reader buffer full (the tags listed are valid); 0xFB: no tag in the field.
INVENTORY_OK = frozenset({0x01, 0x02, 0x03, 0x04})
MORE = 0x03
NO_TAG = 0xFB
MIN_FRAME = 5  # Len Adr Cmd Status… at least Len + Adr + Cmd + CRC(2) for a command


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def seal(body: bytes) -> bytes:
    """Prefix the length byte and append the CRC to `Adr Cmd [Status] Data…`."""
    head = bytes([len(body) + 2]) + body
    c = crc16(head)
    return head + bytes([c & 0xFF, c >> 8])


def inventory_command(adr: int = 0xFF, antenna: int | None = None, q: int = 4, session: int = 0, scan_time: int = 10) -> bytes:
    """The inventory request. Without `antenna`: the short UHFReader18 form (`04 Adr 01 CRC`), which
    every reader of the family answers on its current antenna. With `antenna` (1-based): the
    UHFReader288 form `Q Session MaskMem MaskAdr(2) MaskLen Target Ant ScanTime` (no mask, target A,
    Ant = 0x80 + antenna - 1, scan time in units of 100 ms)."""
    if antenna is None:
        return seal(bytes([adr, INVENTORY]))
    return seal(bytes([adr, INVENTORY, q, session, 0x01, 0, 0, 0, 0x00, 0x80 + antenna - 1, scan_time]))


@dataclass(frozen=True, slots=True)
class Frame:
    raw: bytes
    adr: int = 0
    cmd: int = 0
    status: int = 0
    data: bytes = b""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Tag:
    epc: bytes
    antenna: int
    rssi: int


class Splitter:
    """Cuts reader → host frames out of a byte stream. A frame with a bad CRC is reported once with
    its bytes and the stream resynchronises on the next offset that holds a valid frame."""

    def __init__(self, max_len: int = 255):
        self._buf = bytearray()
        self._junk = bytearray()  # bytes given up on, reported with the next good frame or when too many
        self.max_len = max_len

    @property
    def partial(self) -> bytes:
        return bytes(self._junk + self._buf)

    def drop_partial(self) -> Frame | None:
        raw = bytes(self._junk + self._buf)
        self._junk, self._buf = bytearray(), bytearray()
        return Frame(raw, error="incomplete frame or garbage") if raw else None

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        buf, junk = self._buf, self._junk
        while buf:
            n = buf[0] + 1
            if buf[0] < MIN_FRAME:
                junk.append(buf.pop(0))
                continue
            if len(buf) < n:
                # Maybe a corrupt length byte: resynchronise on a complete valid frame further on, if any.
                j = next((j for j in range(1, len(buf) - MIN_FRAME) if _valid_at(buf, j)), None)
                if j is None:
                    break
                junk += buf[:j]
                del buf[:j]
                continue
            raw = bytes(buf[:n])
            if len(buf) == n and crc16(raw[:-2]) != raw[-2] | raw[-1] << 8:
                # A complete frame with nothing after it and a bad CRC: a corrupted answer, say so now.
                del buf[:n]
                out.append(Frame(bytes(junk) + raw, error="CRC mismatch"))
                junk.clear()
                continue
            if crc16(raw[:-2]) == raw[-2] | raw[-1] << 8:
                if junk:
                    out.append(Frame(bytes(junk), error="CRC mismatch or garbage between frames"))
                    junk.clear()
                del buf[:n]
                out.append(Frame(raw, raw[1], raw[2], raw[3], raw[4:-2]))
            else:
                junk.append(buf.pop(0))
        if len(junk) > self.max_len:
            out.append(Frame(bytes(junk), error="CRC mismatch or garbage between frames"))
            junk.clear()
        return out


def _valid_at(buf: bytearray, j: int) -> bool:
    n = buf[j] + 1
    return buf[j] >= MIN_FRAME and j + n <= len(buf) and crc16(buf[j : j + n - 2]) == buf[j + n - 2] | buf[j + n - 1] << 8


def parse_inventory(frame: Frame) -> tuple[list[Tag], str | None]:
    """Tags in an inventory answer, and an error when the data does not add up (tags before it kept)."""
    d = frame.data
    if frame.status == NO_TAG:
        return [], None
    if frame.status not in INVENTORY_OK:
        return [], f"reader status 0x{frame.status:02X}"
    if len(d) < 2:
        return [], "inventory answer shorter than Ant Num"
    ant_mask, num = d[0], d[1]
    antenna = ant_mask.bit_length() if ant_mask and ant_mask & (ant_mask - 1) == 0 else 0
    tags: list[Tag] = []
    i = 2
    for _ in range(num):
        if i >= len(d):
            return tags, f"answer announces {num} tags, holds {len(tags)}"
        n = d[i]
        if i + 1 + n + 1 > len(d):
            return tags, f"tag {len(tags) + 1}: EPC length {n} runs past the frame"
        tags.append(Tag(bytes(d[i + 1 : i + 1 + n]), antenna, d[i + 1 + n]))
        i += n + 2
    if i != len(d):
        return tags, f"{len(d) - i} bytes left after {num} tags"
    return tags, None
