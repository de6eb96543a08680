"""Temperature/humidity sensors: a Modbus RTU board, an ASCII line sensor, and a fake 1-Wire sysfs tree.

    python -m simulators env                       # board (units 1 and 2) and ASCII sensor on ptys; prints both
    python -m simulators env --w1 /tmp/w1          # also keeps a fake /sys/bus/w1/devices tree there

In tests::

    async with RtuBoard(units=(1, 2)) as board:    # XY-MD02-style: input 1 = temperature x10, input 2 = humidity x10
        board.faults[2] = "silent"                 # the Modbus simulator's faults, per unit
    async with AsciiSensor(interval=0.05) as s:    # prints "T=23.4,H=45.1\\r\\n" per reading on a pty
        s.device; s.set(temperature=30.0); s.fault = "silent" | "garbled" | None
    write_ds18b20(root, "28-0316a2794cff", 23.125)                 # a good w1_slave file
    write_ds18b20(root, "28-…", 23.1, crc_ok=False)                # the kernel saw a CRC mismatch
    write_ds18b20(root, "28-…", power_on=True)                     # 85 °C power-on scratchpad

Invariants:
- The board serves the same unit map on every unit id and moves slowly (temperature ±2 °C over 10 min).
- The ASCII sensor writes whole lines only; a garbled line is still one line (so the reader resynchronises).
- `write_ds18b20` writes what the kernel's w1_therm driver prints: the 9 scratchpad bytes, the CRC
  and the kernel's verdict, then the temperature in millidegrees; the CRC is the real Dallas CRC-8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tty
from pathlib import Path

from simulators.modbus import ModbusSim, Point, _iwave
from simulators.run import stop_task, until_interrupted

BOARD: tuple[Point, ...] = (
    Point("temperature", "input", 1, "int16", "AB", "degC", _iwave(231, 20, 600)),
    Point("humidity", "input", 2, "uint16", "AB", "%", _iwave(452, 30, 900)),
)


def RtuBoard(units: tuple[int, ...] = (1,), period: float = 0.5, moving: bool = True) -> ModbusSim:
    """One or more XY-MD02-style boards on one RS-485 bus (a null-modem pty pair)."""
    return ModbusSim(units=units, rtu="pty", period=period, moving=moving, points=BOARD)


class AsciiSensor:
    """A serial sensor printing `T=23.4,H=45.1` lines on a pty (`device` is the end to open)."""

    def __init__(self, interval: float = 1.0, temperature: float = 23.4, humidity: float = 45.1, fmt: str = "T={t:.1f},H={h:.1f}\r\n"):
        self.interval, self.values, self.fmt = interval, {"temperature": temperature, "humidity": humidity}, fmt
        self.fault: str | None = None
        self.device = ""
        self.lines = 0
        self._fds: tuple[int, int] | None = None
        self._task: asyncio.Task | None = None

    def set(self, **values: float) -> None:
        self.values.update(values)

    async def __aenter__(self) -> AsciiSensor:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._fds, self.device = (master, slave), os.ttyname(slave)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        await stop_task(self._task)
        for fd in self._fds or ():
            os.close(fd)

    def line(self) -> bytes:
        if self.fault == "garbled":
            return b"T=2\xff3.#,H==??\r\n"
        return self.fmt.format(t=self.values["temperature"], h=self.values["humidity"]).encode()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.fault == "silent":
                continue
            with contextlib.suppress(BlockingIOError, OSError):  # nobody reading: the line is lost, as on a wire
                os.write(self._fds[0], self.line())
                self.lines += 1


def crc8(data: bytes) -> int:
    """Dallas/Maxim CRC-8 (polynomial x^8 + x^5 + x^4 + 1, reflected 0x8C).

    Written again on purpose rather than imported from the driver: a simulator that shared the
    driver's checksum code would agree with a wrong checksum."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def ds18b20_scratchpad(temp: float) -> bytes:
    raw = int(round(temp * 16)) & 0xFFFF
    body = bytes([raw & 0xFF, raw >> 8, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10])
    return body + bytes([crc8(body)])


def write_ds18b20(root: Path, sensor: str, temp: float = 23.125, crc_ok: bool = True, power_on: bool = False) -> Path:
    """Write `<root>/<sensor>/w1_slave` as the kernel prints it."""
    pad = ds18b20_scratchpad(85.0 if power_on else temp)
    if not crc_ok:  # a bit flipped on the wire: the kernel reports NO and the bytes do not match their CRC
        pad = bytes([pad[0] ^ 0x04]) + pad[1:]
    hexes = " ".join(f"{b:02x}" for b in pad)
    verdict = "YES" if crc8(pad[:8]) == pad[8] else "NO"
    milli = int(int.from_bytes(pad[:2], "little", signed=True) * 1000 / 16)  # w1_therm's C division truncates; printed even on NO
    folder = Path(root) / sensor
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "w1_slave"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{hexes} : crc={pad[8]:02x} {verdict}\n{hexes} t={milli}\n")
    tmp.replace(path)  # readers never see half a file
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators env", description="Temperature/humidity sensors on ptys.")
    p.add_argument("--units", type=int, nargs="+", default=[1, 2], help="unit ids of the Modbus RTU boards")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between lines of the ASCII sensor")
    p.add_argument("--w1", type=Path, help="keep a fake 1-Wire sysfs tree with two DS18B20 in this folder")
    return p


async def _serve(args: argparse.Namespace) -> None:
    async with RtuBoard(tuple(args.units)) as board, AsciiSensor(args.interval) as ascii_:
        print(f"env simulator: modbus rtu board units {', '.join(map(str, args.units))} on {board.device}", flush=True)
        print(f"env simulator: ascii sensor on {ascii_.device}", flush=True)
        if args.w1:
            print(f"env simulator: 1-wire sysfs tree in {args.w1}", flush=True)
        step = 0
        while True:
            if args.w1:
                write_ds18b20(args.w1, "28-0316a2794cff", 4.0 + (step % 10) * 0.0625)
                write_ds18b20(args.w1, "28-0316a27a11aa", -18.5 + (step % 4) * 0.125)
            step += 1
            await asyncio.sleep(args.interval)


def main(argv: list[str] | None = None) -> int:
    return until_interrupted(_serve(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
