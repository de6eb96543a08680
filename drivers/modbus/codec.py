"""Register decoding and request planning: pure functions, no I/O."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from drivers.modbus.config import Tag

FORMAT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}
MAX_COUNT = {"holding": 125, "input": 125, "coil": 2000, "discrete": 2000}


@dataclass(frozen=True, slots=True)
class Block:
    """One read request covering several tags of one table."""

    table: str
    start: int
    count: int
    tags: tuple[Tag, ...]


def plan(tags: list[Tag], max_gap: int) -> list[Block]:
    """Merge neighbouring addresses into as few requests as the protocol's limits allow."""
    blocks: list[Block] = []
    by_table: dict[str, list[Tag]] = {}
    for tag in tags:
        by_table.setdefault(tag.table, []).append(tag)
    for table, group in by_table.items():
        group.sort(key=lambda t: t.address)
        start = end = None
        members: list[Tag] = []
        for tag in group:
            t_end = tag.address + tag.width
            if start is not None and tag.address - end <= max_gap and max(end, t_end) - start <= MAX_COUNT[table]:
                end = max(end, t_end)
                members.append(tag)
                continue
            if start is not None:
                blocks.append(Block(table, start, end - start, tuple(members)))
            start, end, members = tag.address, t_end, [tag]
        if start is not None:
            blocks.append(Block(table, start, end - start, tuple(members)))
    return blocks


def decode(tag: Tag, words: list[int]) -> int | float:
    """Decode a tag's registers honouring its word and byte order, then apply scale and offset."""
    if tag.word_order == "little":
        words = words[::-1]
    pack = ">H" if tag.byte_order == "big" else "<H"
    data = b"".join(struct.pack(pack, w & 0xFFFF) for w in words)
    raw = struct.unpack(">" + FORMAT[tag.type], data)[0]
    if tag.scale == 1.0 and tag.offset == 0.0:
        return raw
    return raw * tag.scale + tag.offset


def encode(tag: Tag, value: int | float) -> list[int]:
    """The inverse of `decode` (without scale): used by the simulator and the tests."""
    data = struct.pack(">" + FORMAT[tag.type], value)
    fmt = ">H" if tag.byte_order == "big" else "<H"
    words = [struct.unpack(fmt, data[i : i + 2])[0] for i in range(0, len(data), 2)]
    return words[::-1] if tag.word_order == "little" else words
