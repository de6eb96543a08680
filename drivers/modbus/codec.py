"""Register decoding and request planning: pure functions, no I/O.

Invariants:
- A block never exceeds the protocol's limits (125 registers, 2000 bits) nor the device's `max_registers`.
- `decode` is total: any register list gives (value, reason). reason is None for a good value, else why
  the registers are not a value (too few or too many registers, NaN or infinity before or after scaling,
  undecodable text); the caller keeps the raw bytes then. A good number is always finite.
- Scale and offset apply to numeric types only; bits, bools and strings pass unchanged.
- A string ends at its first NUL (terminator and padding); blanks are the PLC's data and are kept.
- `Block.decode(regs)` gives exactly what `decode` gives tag by tag. Numbers in plain byte orders are
  unpacked straight from the answer's bytes: a block of big-endian numbers that do not overlap in one
  C call, others one call per tag; everything else goes through `decode`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from drivers.modbus.config import WIDTH, Tag

FORMAT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q", "float32": "f", "float64": "d"}
F32 = struct.Struct(">f")
MAX_COUNT = {"holding": 125, "input": 125, "coil": 2000, "discrete": 2000}


@dataclass(frozen=True, slots=True)
class Block:
    """One read request covering several tags of one table."""

    table: str
    start: int
    count: int
    tags: tuple[Tag, ...]
    fast: tuple = field(init=False, repr=False, compare=False)  # per tag: (offset, unpack or None)
    words: struct.Struct | None = field(init=False, repr=False, compare=False)  # the answer's registers as bytes
    whole: struct.Struct | None = field(init=False, repr=False, compare=False)  # every tag in one call, when it can
    post: tuple[int, ...] = field(init=False, repr=False, compare=False)  # tags whose raw number needs _number

    def __post_init__(self) -> None:
        registers = self.table in ("holding", "input")
        unpackers = [_unpacker(t) if registers else None for t in self.tags]
        put = object.__setattr__
        put(self, "fast", tuple((t.address - self.start, u and u.unpack_from) for t, u in zip(self.tags, unpackers)))
        put(self, "words", struct.Struct(f">{self.count}H") if registers else None)
        put(self, "whole", _whole(self, unpackers) if registers else None)
        put(self, "post", tuple(i for i, t in enumerate(self.tags) if not _plain(t)))

    def decode(self, regs: list[int]) -> tuple[list[Any], list[tuple[int, str, list[int]]]]:
        """The tags' values in order (None where bad) and the bad ones as (index, reason, their
        registers); `regs` may be shorter or longer than asked."""
        data = None
        if self.words is not None and len(regs) == self.count:
            try:
                data = self.words.pack(*regs)
            except struct.error:  # a register outside 0..65535 (a foreign client object): the slow path masks it
                data = None
        faults: list[tuple[int, str, list[int]]] = []
        if data is not None and self.whole is not None:
            values = list(self.whole.unpack_from(data))
            for i in self.post:
                t = self.tags[i]
                values[i], reason = _number(t, values[i])
                if reason is not None:
                    off = t.address - self.start
                    faults.append((i, reason, regs[off : off + t.width]))
            return values, faults
        values = []
        for i, (t, (off, unpack)) in enumerate(zip(self.tags, self.fast)):
            if data is not None and unpack is not None:
                value, reason = _number(t, unpack(data, off * 2)[0])
                words = regs[off : off + t.width]
            else:
                words = regs[off : off + t.width]
                value, reason = decode(t, words)
            values.append(value)
            if reason is not None:
                faults.append((i, reason, words))
        return values, faults


def _plain(tag: Tag) -> bool:
    """An integer taken as it is: no check, no scale."""
    return tag.type in FORMAT and not tag.type.startswith("float") and tag.scale == 1.0 and tag.offset == 0.0


def _unpacker(tag: Tag) -> struct.Struct | None:
    """The struct for a number whose registers are plain big- or little-endian bytes, else None."""
    if tag.type not in FORMAT:
        return None
    if tag.word_order == tag.byte_order == "big":
        return struct.Struct(">" + FORMAT[tag.type])
    if tag.word_order == tag.byte_order == "little" or (WIDTH[tag.type] == 1 and tag.byte_order == "little"):
        return struct.Struct("<" + FORMAT[tag.type])  # every byte reversed: little-endian
    return None


def _whole(block: Block, unpackers: list[struct.Struct | None]) -> struct.Struct | None:
    """One struct for every tag of the block (pad bytes between them), when they are all big-endian
    numbers in address order that do not overlap."""
    fmt, at = [">"], block.start
    for t, u in zip(block.tags, unpackers):
        if u is None or not u.format.startswith(">") or t.address < at:
            return None
        fmt.append(f"{(t.address - at) * 2}x{FORMAT[t.type]}")
        at = t.address + t.width
    return struct.Struct("".join(fmt))


def plan(tags: list[Tag], max_gap: int, max_registers: int = 125) -> list[Block]:
    """Merge neighbouring addresses into as few requests as the protocol's limits allow."""
    blocks: list[Block] = []
    by_table: dict[str, list[Tag]] = {}
    for tag in tags:
        by_table.setdefault(tag.table, []).append(tag)
    for table, group in by_table.items():
        limit = min(MAX_COUNT[table], max_registers) if table in ("holding", "input") else MAX_COUNT[table]
        gap = max_gap * 16 if table in ("coil", "discrete") else max_gap  # bits are cheap: 16 per register's worth
        group.sort(key=lambda t: (t.address, -t.width))
        start = end = 0
        members: list[Tag] = []
        for tag in group:
            t_end = tag.address + tag.width
            if members and tag.address - end <= gap and max(end, t_end) - start <= limit:
                end = max(end, t_end)
                members.append(tag)
                continue
            if members:
                blocks.append(Block(table, start, end - start, tuple(members)))
            start, end, members = tag.address, t_end, [tag]
        if members:
            blocks.append(Block(table, start, end - start, tuple(members)))
    return blocks


def to_bytes(tag: Tag, words: list[int]) -> bytes:
    """The tag's registers as bytes, most significant first, after undoing word and byte order."""
    if tag.word_order == "little":
        words = words[::-1]
    data = b"".join((w & 0xFFFF).to_bytes(2, "big") for w in words)
    if tag.byte_order == "little":
        data = b"".join(data[i : i + 2][::-1] for i in range(0, len(data), 2))
    return data


def decode(tag: Tag, words: list[int]) -> tuple[Any, str | None]:
    """Decode a tag's registers honouring its word and byte order, then apply scale and offset."""
    if len(words) != tag.width:
        return None, f"answer holds {len(words)} of the tag's {tag.width} registers"
    if tag.type == "bit":
        return bool((words[0] >> tag.bit) & 1), None
    data = to_bytes(tag, words)
    if tag.type == "string":
        try:
            return data[: tag.length].split(b"\0", 1)[0].decode(tag.encoding), None
        except UnicodeDecodeError as exc:
            return None, f"not {tag.encoding} text: {exc.reason} at byte {exc.start}"
    return _number(tag, struct.unpack(">" + FORMAT[tag.type], data)[0])


def _number(tag: Tag, raw: int | float) -> tuple[Any, str | None]:
    """A number as unpacked from the tag's registers, checked, then scaled."""
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return None, f"{tag.type} is {raw} (device reports no valid number)"
        if tag.type == "float32":
            raw = shortest_float32(raw)
    if tag.scale == 1.0 and tag.offset == 0.0:
        return raw, None
    # 12 significant digits: 127 * 0.1 is 12.7, not 12.700000000000001; far beyond any sensor's resolution.
    value = float(f"{raw * tag.scale + tag.offset:.12g}")
    if not math.isfinite(value):
        return None, f"{raw} * {tag.scale:g} + {tag.offset:g} is out of range"
    return value, None


def shortest_float32(value: float) -> float:
    """The shortest decimal that is the same float32: 180.08447 rather than 180.08447265625.

    A float32 carries 6-9 significant digits; printing its exact binary expansion suggests a
    precision the PLC never had. The result decodes back to the identical 32 bits.
    """
    data = F32.pack(value)
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        if F32.pack(short) == data:
            return short
    return value
