"""CF-RU / UHFReader288 serial protocol: frames, CRC-16/MCRF4XX, the inventory command and its answer.

Frame: `Len Adr Cmd [Status] Data… CRC-LSB CRC-MSB`; `Len` counts the bytes after it; the CRC
(reflected polynomial 0x8408, init 0xFFFF, no final XOR) covers Len..Data. Host → reader frames have
no Status byte. Inventory answer data: `Ant(bitmask) Num {EPClen EPC RSSI}…`; status 0x03 means
more frames of the same inventory follow.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

INVENTORY = 0x01
# Answer statuses of an inventory: 0x01 done, 0x02 scan time overflow, 0x03 more frames follow,
# 0x04 reader buffer full (the tags listed are valid); 0xFB: no tag in the field.
INVENTORY_OK = frozenset({0x01, 0x02, 0x03, 0x04})
MORE = 0x03
NO_TAG = 0xFB
MIN_FRAME = 5  # Len Adr Cmd Status… at least Len + Adr + Cmd + CRC(2) for a command
POLY = 0x8408  # CRC-16/MCRF4XX, reflected


def _table() -> list[int]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        out.append(c)
    return out


TABLE = _table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _skips() -> list[int]:
    """Nibble tables of the register's advance over n zero bytes, n = 0..256.

    The register update is linear over GF(2): after n bytes it is adv(n, before) ^ crc16(bytes, 0).
    With the register kept after every prefix of the stream (`pre`), the CRC of any window is then
    pre[end] ^ adv(n, pre[start] ^ 0xFFFF), four look-ups whatever the window's length. That is
    what makes resynchronising on garbage cost a constant per byte instead of a CRC per offset.
    """
    basis = [1 << b for b in range(16)]
    out: list[int] = []
    for _ in range(257):
        for k in range(4):
            nib = [0] * 16
            for v in range(1, 16):
                low = v & -v
                nib[v] = nib[v ^ low] ^ basis[4 * k + low.bit_length() - 1]
            out += nib
        basis = [TABLE[e & 0xFF] ^ (e >> 8) for e in basis]
    return out


SKIP = _skips()


def _advance(n: int, s: int) -> int:
    t = n * 64
    return SKIP[t + (s & 15)] ^ SKIP[t + 16 + (s >> 4 & 15)] ^ SKIP[t + 32 + (s >> 8 & 15)] ^ SKIP[t + 48 + (s >> 12)]


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


PENDING, GOOD, BAD = 0, 1, 2
COMPACT = 4096  # consumed bytes kept before the buffers are cut (amortises the copy)


class Splitter:
    """Cuts reader → host frames out of a byte stream. A frame with a bad CRC is reported once with
    its bytes and the stream resynchronises on the next offset that holds a valid frame.

    Every offset is judged once, when the frame its length byte announces is complete, in constant
    time (see `_skips`); `work` counts bytes taken in, offsets judged and steps of the cutter, and
    stays within three times the bytes fed (plus one per feed).
    """

    def __init__(self, max_len: int = 255):
        self.max_len = max_len
        self.work = 0
        self._clear()

    def _clear(self) -> None:
        self._buf = bytearray()  # bytes from absolute stream index _base on
        self._pre = [0xFFFF]  # the CRC register after _buf[:i]; any start value works for windows
        self._verdict = bytearray()  # per byte of _buf: PENDING, GOOD or BAD as a frame start
        self._base = 0
        self._pos = 0  # absolute index of the first byte not yet given out
        self._due: dict[int, list[int]] = {}  # absolute end -> offsets whose frame completes there
        self._good: list[int] = []  # heap of absolute offsets holding a complete valid frame
        self._junk = bytearray()  # bytes given up on, reported with the next good frame or when too many

    @property
    def partial(self) -> bytes:
        return bytes(self._junk + self._buf[self._pos - self._base :])

    def drop_partial(self) -> Frame | None:
        raw = self.partial
        self._clear()
        return Frame(raw, error="incomplete frame or garbage") if raw else None

    def feed(self, data: bytes) -> list[Frame]:
        self._take(data)
        out = self._cut()
        if len(self._junk) > self.max_len:
            out.append(Frame(bytes(self._junk), error="CRC mismatch or garbage between frames"))
            self._junk.clear()
        if self._pos - self._base >= COMPACT:
            cut = self._pos - self._base
            del self._buf[:cut], self._pre[:cut], self._verdict[:cut]
            self._base = self._pos
        return out

    def _take(self, data: bytes) -> None:
        buf, pre, verdict, due, base, pos = self._buf, self._pre, self._verdict, self._due, self._base, self._pos
        k = base + len(buf)
        crc = pre[-1]
        for b in data:
            buf.append(b)
            crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
            pre.append(crc)
            if b < MIN_FRAME:
                verdict.append(BAD)
            else:
                verdict.append(PENDING)
                due.setdefault(k + b + 1, []).append(k)
            k += 1
            for j in due.pop(k, ()):
                if j < pos:
                    continue  # already given out
                self.work += 1
                ok = crc == _advance(k - j, pre[j - base] ^ 0xFFFF)
                verdict[j - base] = GOOD if ok else BAD
                if ok:
                    heapq.heappush(self._good, j)
        self.work += len(data)

    def _cut(self) -> list[Frame]:
        buf, verdict, base, junk, good = self._buf, self._verdict, self._base, self._junk, self._good
        end = base + len(buf)
        out: list[Frame] = []
        pos = self._pos
        while pos < end:
            self.work += 1
            i = pos - base
            v, n = verdict[i], buf[i] + 1
            if v == GOOD:
                if junk:
                    out.append(Frame(bytes(junk), error="CRC mismatch or garbage between frames"))
                    junk.clear()
                raw = bytes(buf[i : i + n])
                out.append(Frame(raw, raw[1], raw[2], raw[3], raw[4:-2]))
                pos += n
            elif v == BAD and (buf[i] < MIN_FRAME or pos + n != end):
                junk.append(buf[i])
                pos += 1
            else:
                # Not complete yet, or complete with a bad CRC and nothing after it. Either way the
                # length byte may be corrupt, so a valid frame complete further on wins.
                while good and good[0] < pos:
                    heapq.heappop(good)
                if good:
                    junk += buf[i : good[0] - base]
                    pos = good[0]
                elif v == BAD:
                    # a corrupted answer that ended the stream: say so now rather than at the timeout
                    out.append(Frame(bytes(junk) + bytes(buf[i:]), error="CRC mismatch"))
                    junk.clear()
                    pos = end
                else:
                    break
        self._pos = pos
        return out


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
