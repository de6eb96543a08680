"""RFID readers on a pty: a CF-RU / UHFReader288 UHF reader that answers inventory commands with the
tags in its field, and an RDM6300-style badge reader.

`python -m simulators rfid --link /tmp/rfid0` runs a CF-RU reader whose tags come and go;
`--rdm6300` runs a badge reader that presents a card every few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

from simulators.serial_port import PtyDevice

TAGS_PER_FRAME = 4
INVENTORY = 0x01


def crc16(data: bytes) -> int:
    """CRC-16/MCRF4XX (reflected polynomial 0x8408, init 0xFFFF, no final XOR), bit by bit.

    Written here on purpose, and unlike the driver's table: a simulator sharing the driver's CRC
    would agree with a wrong one."""
    crc = 0xFFFF
    for byte in data:
        for bit in range(8):
            feedback = (crc ^ (byte >> bit)) & 1
            crc >>= 1
            if feedback:
                crc ^= 0x8408
    return crc


def seal(body: bytes) -> bytes:
    """`Len` in front of `Adr Cmd [Status] Data…` and the CRC after it, least significant byte first."""
    head = bytes([len(body) + 2]) + body
    return head + crc16(head).to_bytes(2, "little")


@dataclass
class SimTag:
    epc: bytes
    antenna: int = 1
    rssi: list[int] = field(default_factory=lambda: [0x60])
    reads: int | None = None  # answers it still appears in; None: until removed
    _i: int = 0

    def next_rssi(self) -> int:
        v = self.rssi[self._i % len(self.rssi)]
        self._i += 1
        return v


class CfruReader:
    """Answers each inventory with one frame per antenna and up to 4 tags per frame (status 0x03 while
    more follow). `corrupt_next` flips a CRC bit in the next answer; `mute` stops answering."""

    def __init__(self, link: str | Path, adr: int = 0x00):
        self.pty = PtyDevice(link, self._received)
        self.adr = adr
        self.tags: dict[bytes, SimTag] = {}
        self.inventories = 0
        self.corrupt_next = False
        self.mute = False
        self._buf = bytearray()

    def plug(self) -> str:
        return self.pty.plug()

    def unplug(self) -> None:
        self.pty.unplug()

    def add(self, epc: bytes | str, antenna: int = 1, rssi: list[int] | None = None, reads: int | None = None) -> None:
        epc = bytes.fromhex(epc) if isinstance(epc, str) else epc
        self.tags[epc] = SimTag(epc, antenna, rssi or [0x60], reads)

    def remove(self, epc: bytes | str) -> None:
        self.tags.pop(bytes.fromhex(epc) if isinstance(epc, str) else epc, None)

    def _received(self, data: bytes) -> None:
        self._buf += data
        while self._buf and len(self._buf) >= self._buf[0] + 1:
            n = self._buf[0] + 1
            frame = bytes(self._buf[:n])
            del self._buf[:n]
            if crc16(frame[:-2]) != frame[-2] | frame[-1] << 8:
                continue  # a real reader ignores a corrupt command
            if frame[2] == INVENTORY and not self.mute:
                antenna = (frame[10] & 0x7F) + 1 if len(frame) >= 14 else None
                self.pty.write(self.answer(antenna))

    def answer(self, antenna: int | None) -> bytes:
        self.inventories += 1
        seen: dict[int, list[SimTag]] = {}
        for t in list(self.tags.values()):
            if antenna is not None and t.antenna != antenna:
                continue
            seen.setdefault(t.antenna, []).append(t)
            if t.reads is not None:
                t.reads -= 1
                if t.reads <= 0:
                    del self.tags[t.epc]
        chunks = [(ant, tags[i : i + TAGS_PER_FRAME]) for ant, tags in sorted(seen.items()) for i in range(0, len(tags), TAGS_PER_FRAME)]
        if not chunks:
            chunks = [(antenna or 1, [])]
        out = b""
        for k, (ant, tags) in enumerate(chunks):
            status = 0x03 if k < len(chunks) - 1 else 0x01
            data = bytes([1 << (ant - 1), len(tags)]) + b"".join(bytes([len(t.epc)]) + t.epc + bytes([t.next_rssi()]) for t in tags)
            out += seal(bytes([self.adr, INVENTORY, status]) + data)
        if self.corrupt_next:
            self.corrupt_next = False
            out = out[:-1] + bytes([out[-1] ^ 0x01])
        return out


class Rdm6300Reader:
    def __init__(self, link: str | Path):
        self.pty = PtyDevice(link, lambda data: None)

    def plug(self) -> str:
        return self.pty.plug()

    def unplug(self) -> None:
        self.pty.unplug()

    @staticmethod
    def frame(card: int, version: int = 0x0F, corrupt: bool = False) -> bytes:
        values = bytes([version]) + card.to_bytes(4, "big")
        check = 0
        for b in values:
            check ^= b
        return b"\x02" + (values + bytes([check ^ (1 if corrupt else 0)])).hex().upper().encode() + b"\x03"

    def present(self, card: int, repeats: int = 1, **kw) -> None:
        self.pty.write(self.frame(card, **kw) * repeats)


async def _run_cfru(args: argparse.Namespace) -> int:
    reader = CfruReader(args.link)
    print(f"CF-RU reader on {reader.plug()} (link {args.link})", flush=True)
    rng = random.Random(args.seed)
    pool = [bytes.fromhex(f"3074257BF7194E40{i:08X}") for i in range(args.tags)]
    try:
        while True:  # every churn period one tag leaves and another arrives, on one of four antennas
            for epc in rng.sample(pool, k=min(len(pool), 1 + len(reader.tags) // 2)):
                if epc in reader.tags:
                    reader.remove(epc)
                    print(f"- {epc.hex().upper()}", flush=True)
                else:
                    reader.add(epc, antenna=rng.randint(1, 4), rssi=[rng.randint(0x40, 0x7F) for _ in range(8)])
                    print(f"+ {epc.hex().upper()}", flush=True)
            await asyncio.sleep(args.churn)
    finally:
        reader.unplug()


async def _run_rdm(args: argparse.Namespace) -> int:
    reader = Rdm6300Reader(args.link)
    print(f"RDM6300 badge reader on {reader.plug()} (link {args.link})", flush=True)
    try:
        while True:
            reader.present(0x00A1B2C3, repeats=5)
            print("card 0010597059 presented", flush=True)
            await asyncio.sleep(args.churn)
    finally:
        reader.unplug()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators rfid", description=__doc__.splitlines()[0])
    p.add_argument("--link", default="/tmp/shopfloor-rfid", help="stable path (symlink) to the pty")
    p.add_argument("--rdm6300", action="store_true", help="a 125 kHz badge reader instead of a UHF reader")
    p.add_argument("--tags", type=int, default=8, help="UHF tags in the pool")
    p.add_argument("--churn", type=float, default=3.0, help="seconds between tags coming and going")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    try:
        return asyncio.run(_run_rdm(args) if args.rdm6300 else _run_cfru(args))
    except KeyboardInterrupt:
        return 0
