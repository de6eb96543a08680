"""Serial framing under line noise: CPU per byte of the CF-RU, RDM6300 and scanner splitters.

    python bench/rfid.py [--seconds 2] [--seed 1]

Feeds each splitter `--seconds` worth of random bytes at its line speed (CF-RU 57 600 baud, the
others 9 600), in reads of 1 to 64 bytes as a serial port delivers them, with a valid frame now and
then, and prints CPU microseconds per byte and CPU seconds per second of noise. Asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.rfid_serial import cfru, rdm6300  # noqa: E402
from drivers.scanner_serial.framing import Framer  # noqa: E402

VALID = {
    "cfru": bytes.fromhex("1500010301010c0000000000000000000003136bb1a5"),
    "rdm6300": b"\x020F00A1B2C3DF\x03",
    "scanner": b"]C1010950110102091710LOT-A42\r",
}
BAUD = {"cfru": 57600, "rdm6300": 9600, "scanner": 9600}


def noise(rng: random.Random, n: int, frame: bytes) -> list[bytes]:
    data = bytearray()
    while len(data) < n:
        data += rng.randbytes(rng.randint(50, 2000))
        data += frame
    data = bytes(data[:n])
    reads, i = [], 0
    while i < len(data):
        k = rng.randint(1, 64)
        reads.append(data[i : i + k])
        i += k
    return reads


def run(name: str, feed, reads: list[bytes]) -> tuple[float, int]:
    start = time.process_time()
    frames = 0
    for chunk in reads:
        frames += len(feed(chunk))
    return time.process_time() - start, frames


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0, help="seconds of line noise per splitter")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    splitters = {"cfru": lambda: cfru.Splitter().feed, "rdm6300": lambda: rdm6300.Splitter().feed, "scanner": lambda: Framer().feed}
    for name, make in splitters.items():
        n = int(BAUD[name] / 10 * args.seconds)
        reads = noise(random.Random(args.seed), n, VALID[name])
        cpu, frames = run(name, make(), reads)
        print(f"{name:8} {n:7d} bytes in {len(reads):6d} reads: {cpu * 1e6 / n:7.2f} us/byte, "
              f"{cpu / args.seconds:6.3f} s CPU per second of noise at {BAUD[name]} baud ({frames} frames out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
