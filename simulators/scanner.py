"""A serial barcode scanner on a pty that replays a scripted shift and collects host-ACK feedback.

`python -m simulators scanner --link /tmp/scanner0` prints the pty behind the link, then sends one
scan every `--interval` seconds; with `--hostack` each scan waits for the gateway's ESC 7 , / ESC 8 ,
(or `--ack-timeout`) and the tone is printed next to the scan.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from simulators.serial_port import PtyDevice

G = "0109501101020917"
GS = "\x1d"
# (scan, expected status at a station whose BOM for WO-2024-0042/0043 lists GTIN 09501101020917)
SHIFT: list[tuple[str, str]] = [
    (f"]C1{G}1727123110LOT-A42", "unassigned"),  # material before any traveler
    ("0010597059", "accepted"),  # badge: operator logs in
    ("]C0WO-2024-0042", "accepted"),  # traveler opens the work order
    (f"]C1{G}1727123110LOT-A42", "accepted"),  # material in the BOM
    ("]E05901234123457", "rejected"),  # material not in the BOM
    (f"]C1{G}1724010110LOT-OLD", "rejected"),  # expired lot
    (f"]C1{G}17261331", "rejected"),  # bad scan: 31 Dec… of month 13
    (f"]C1{G}1727123110LOT-A42", "duplicate"),  # same label again within the TTL
    ("LOT:PL-2024-7", "accepted"),  # produced-lot label
    ("]C0WO-2024-0043", "accepted"),  # changeover
    (f"]C1{G}1727123110LOT-A42", "accepted"),  # same label, new order
    ("CMD:END", "accepted"),  # end order
    ("0010597059", "accepted"),  # badge again: operator logs out
]
FRAMES = {"cr": (b"", b"\r"), "crlf": (b"", b"\r\n"), "lf": (b"", b"\n"), "stx_etx": (b"\x02", b"\x03")}
ACKS = {b"\x1b7,": "good", b"\x1b8,": "bad"}


class SerialScanner:
    """The simulated scanner. `acks` collects the tones the gateway sent back, in order."""

    def __init__(self, link: str | Path, framing: str = "cr"):
        self.pty = PtyDevice(link, self._received)
        self.head, self.tail = FRAMES[framing]
        self.received = bytearray()
        self.acks: asyncio.Queue[str] = asyncio.Queue()
        self.tones: list[str] = []

    def plug(self) -> str:
        return self.pty.plug()

    def unplug(self) -> None:
        self.pty.unplug()

    def send(self, data: bytes) -> None:
        self.pty.write(data)

    def scan(self, text: str) -> None:
        self.send(self.head + text.encode("cp1252") + self.tail)

    async def next_ack(self, timeout: float | None = None) -> str:
        return await asyncio.wait_for(self.acks.get(), timeout)

    def _received(self, data: bytes) -> None:
        self.received += data
        while True:
            cut = self.received.find(b",")
            if cut < 0:
                return
            code = bytes(self.received[: cut + 1])
            del self.received[: cut + 1]
            tone = ACKS.get(code[-3:], f"unknown:{code.hex()}")
            self.tones.append(tone)
            self.acks.put_nowait(tone)


async def _run(args: argparse.Namespace) -> int:
    sim = SerialScanner(args.link, args.framing)
    print(f"scanner on {sim.plug()} (link {args.link}); framing {args.framing}", flush=True)
    await asyncio.sleep(args.start_delay)  # give the gateway time to open the port (opening flushes input)
    try:
        while True:
            for text, expected in SHIFT:
                sim.scan(text)
                tone = ""
                if args.hostack:
                    try:
                        tone = await sim.next_ack(args.ack_timeout)
                    except TimeoutError:
                        tone = "no answer"
                print(f"{text!r:50} expect {expected:10} {tone}", flush=True)
                await asyncio.sleep(args.interval)
            if not args.loop:
                return 0
    finally:
        sim.unplug()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators scanner", description=__doc__.splitlines()[0])
    p.add_argument("--link", default="/tmp/shopfloor-scanner", help="stable path (symlink) to the pty")
    p.add_argument("--framing", choices=sorted(FRAMES), default="cr")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between scans")
    p.add_argument("--hostack", action="store_true", help="wait for the gateway's host-ACK after each scan")
    p.add_argument("--ack-timeout", type=float, default=2.0)
    p.add_argument("--loop", action="store_true", help="replay the shift forever")
    p.add_argument("--start-delay", type=float, default=1.0, help="seconds to wait before the first scan")
    args = p.parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 0
