"""Modbus PLC simulator (TCP or RTU) with moving process values and fault injection.

    python -m simulators modbus --host 127.0.0.1 --port 5020          # Modbus TCP
    python -m simulators modbus --rtu /dev/ttyUSB0 --units 1 2        # RTU on a serial port
    python -m simulators modbus --rtu pty --units 1 2                 # RTU on a pty it creates and prints

In tests::

    async with ModbusSim(port=0) as sim:          # sim.port is the bound port
        await sim.set("press_temperature", 200.0) # pin a point to a value (it stops moving)
        sim.fault = "silent"                      # or ("exception", 2), ("short", 1), or None
        await sim.restart()

Register map (every unit id serves the same map; addresses are 0-based protocol addresses;
`order` is the byte layout of multi-register values, A = most significant byte)::

    table     addr  regs  type      order  name                  unit    behaviour
    holding      0    2   float32   ABCD   press_temperature     degC    180 +/- 4, period 60 s
    holding      2    2   float32   ABCD   hydraulic_pressure    bar     210 +/- 15, period 7 s
    holding      4    2   uint32    ABCD   cycle_counter         -       +1 every 4 s, from 100000
    holding      6    1   uint16    AB     spindle_speed         rpm     1450 +/- 30, period 13 s
    holding      7    1   int16     AB     motor_current         A x0.1  raw 125 +/- 20 (12.5 A)
    holding      8    1   int16     AB     ambient_temperature   degC x0.1  raw 231 +/- 15
    holding      9    1   uint16    AB     status_word           bits    bit0 running, bit1 auto, bit2 door closed, bit3 fault
    holding     10    2   float32   CDAB   temperature_setpoint  degC    180.0 (static, writable)
    holding     12    4   float64   ABCD   energy_total          kWh     12345.6 + 0.01/s
    holding     16    4   int64     ABCD   part_counter          -       5000000000 + cycles
    holding     20    8   string16  AB     recipe                -       "RCP-A42" NUL padded
    holding     28    2   int32     ABCD   axis_position         um      +/- 120000, period 10 s (negative half the time)
    holding     30    2   float32   BADC   press_force           kN      850 +/- 50, period 9 s
    holding     32    2   float32   DCBA   vibration             mm/s    2.5 +/- 0.5, period 5 s
    holding 34..99        zeros (valid, unused)
    holding 100..199      scratch, zeros: free for tests (`put`, `write`)
    holding   >= 200      illegal address (exception 2)
    input        0    1   int16     AB     oil_temperature       degC x0.1  raw 452 +/- 30
    input        1    1   uint16    AB     room_humidity         % x0.1  raw 455 +/- 50
    input        2    2   float32   ABCD   coolant_flow          l/min   12.5 +/- 1
    input   4..199        zeros; input >= 200 illegal
    coil         0                         pump_on                       True
    coil         1                         heater_on                     True while press_temperature < 180
    coil         2                         alarm_horn                    False
    coil         3                         conveyor_run                  True
    coil    4..127        False; coil >= 128 illegal
    discrete     0                         door_closed                   True
    discrete     1                         estop_ok                      True
    discrete     2                         part_present                  toggles every 2 s
    discrete     3                         light_curtain_clear           True
    discrete 4..127       False; discrete >= 128 illegal

Invariants:
- Values are a deterministic function of time since start (no randomness), so two runs agree.
- `requests` counts every request PDU the server received (per unit in `requests_by_unit`), valid or
  not, so tests can prove that merged reads issue fewer requests than tags.
- A silent unit never answers a request it swallowed, not even after the fault is cleared: a late
  answer on an RS-485 bus would be taken for the answer to someone else's request.
- `set` pins a point: the clock no longer moves it until `release`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.pty import NullModem
from simulators.run import stop_task, until_interrupted

FC_READ = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
REGISTERS = {"holding": 200, "input": 200}
BITS = {"coil": 128, "discrete": 128}
STRUCT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q", "float32": "f", "float64": "d"}


def encode(type_: str, value: Any, order: str = "ABCD", length: int = 0) -> list[int]:
    """Registers of `value` laid out as `order` (ABCD big endian, CDAB word swap, BADC byte swap, DCBA both).

    Strings take `length` characters (2 per register), NUL padded; `order` BA swaps the two characters of
    each register. Written independently of the driver's codec so that tests compare two implementations.
    """
    if type_ == "string":
        data = value.encode("ascii").ljust(length, b"\0")[:length]
        data += b"\0" * (len(data) % 2)
    else:
        data = struct.pack(">" + STRUCT[type_], value)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if order in ("BADC", "DCBA", "BA"):
        words = [w[::-1] for w in words]
    if order in ("CDAB", "DCBA"):
        words = words[::-1]
    return [int.from_bytes(w, "big") for w in words]


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    table: str
    address: int
    type: str  # int16 … float64, string, bool
    order: str
    unit: str | None
    value: Any  # a constant, or a function of seconds since start
    length: int = 0  # characters, for strings


def _wave(mid: float, amp: float, period: float, phase: float = 0.0):
    return lambda t: mid + amp * math.sin(2 * math.pi * (t + phase) / period)


def _iwave(mid: float, amp: float, period: float):
    wave = _wave(mid, amp, period)
    return lambda t: int(round(wave(t)))


POINTS: tuple[Point, ...] = (
    Point("press_temperature", "holding", 0, "float32", "ABCD", "degC", _wave(180, 4, 60)),
    Point("hydraulic_pressure", "holding", 2, "float32", "ABCD", "bar", _wave(210, 15, 7)),
    Point("cycle_counter", "holding", 4, "uint32", "ABCD", None, lambda t: 100000 + int(t // 4)),
    Point("spindle_speed", "holding", 6, "uint16", "AB", "rpm", _iwave(1450, 30, 13)),
    Point("motor_current", "holding", 7, "int16", "AB", "A", _iwave(125, 20, 11)),
    Point("ambient_temperature", "holding", 8, "int16", "AB", "degC", _iwave(231, 15, 120)),
    Point("status_word", "holding", 9, "uint16", "AB", None, 0b0111),
    Point("temperature_setpoint", "holding", 10, "float32", "CDAB", "degC", 180.0),
    Point("energy_total", "holding", 12, "float64", "ABCD", "kWh", lambda t: 12345.6 + 0.01 * t),
    Point("part_counter", "holding", 16, "int64", "ABCD", None, lambda t: 5_000_000_000 + int(t // 4)),
    Point("recipe", "holding", 20, "string", "AB", None, "RCP-A42", length=16),
    Point("axis_position", "holding", 28, "int32", "ABCD", "um", _iwave(0, 120000, 10)),
    Point("press_force", "holding", 30, "float32", "BADC", "kN", _wave(850, 50, 9)),
    Point("vibration", "holding", 32, "float32", "DCBA", "mm/s", _wave(2.5, 0.5, 5)),
    Point("oil_temperature", "input", 0, "int16", "AB", "degC", _iwave(452, 30, 45)),
    Point("room_humidity", "input", 1, "uint16", "AB", "%", _iwave(455, 50, 90)),
    Point("coolant_flow", "input", 2, "float32", "ABCD", "l/min", _wave(12.5, 1, 17)),
    Point("pump_on", "coil", 0, "bool", "", None, True),
    Point("heater_on", "coil", 1, "bool", "", None, lambda t: _wave(180, 4, 60)(t) < 180),
    Point("alarm_horn", "coil", 2, "bool", "", None, False),
    Point("conveyor_run", "coil", 3, "bool", "", None, True),
    Point("door_closed", "discrete", 0, "bool", "", None, True),
    Point("estop_ok", "discrete", 1, "bool", "", None, True),
    Point("part_present", "discrete", 2, "bool", "", None, lambda t: int(t // 2) % 2 == 1),
    Point("light_curtain_clear", "discrete", 3, "bool", "", None, True),
)
BY_NAME = {p.name: p for p in POINTS}


def _device(unit: int, action) -> SimDevice:
    # Four separate tables (not pymodbus' shared layout), so coil 0 and holding register 0 differ.
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, values=[False] * BITS["coil"], datatype=DataType.BITS)],
            [SimData(0, values=[False] * BITS["discrete"], datatype=DataType.BITS)],
            [SimData(0, count=REGISTERS["holding"], values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=REGISTERS["input"], values=0, datatype=DataType.REGISTERS)],
        ),
        action=functools.partial(action, unit),
    )


Fault = None | str | tuple[str, int]


class ModbusSim:
    """An in-process Modbus server (TCP, or RTU on a serial port or a null-modem pty pair).

    `rtu=None`: TCP on host:port (port 0 picks a free one, kept across restarts).
    `rtu="pty"`: RTU on a pty pair; connect the client to `sim.device`.
    `rtu="/dev/…"`: RTU on that serial port.
    `points`: the register map (default: the PLC map above; `simulators.env` passes a sensor board's).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        units: tuple[int, ...] = (1,),
        rtu: str | None = None,
        baudrate: int = 19200,
        period: float = 0.1,
        moving: bool = True,
        points: tuple[Point, ...] = POINTS,
    ):
        if not units or not all(1 <= u <= 247 for u in units):
            raise ValueError(f"unit ids must be 1..247, got {units}")
        self.host, self.port, self.units, self.rtu, self.baudrate = host, port, tuple(units), rtu, baudrate
        self.period, self.moving = period, moving
        self.points = {p.name: p for p in points}
        self.device = ""  # the serial device a client opens (RTU)
        self.fault: Fault = None  # applies to every unit without its own entry in `faults`
        self.faults: dict[int, Fault] = {}
        self.requests = 0
        self.requests_by_unit: Counter[int] = Counter()
        self.pinned: dict[tuple[int, str], Any] = {}
        self.server: ModbusTcpServer | ModbusSerialServer | None = None
        self._t0 = time.monotonic()
        self._internal = False
        self._hold: asyncio.Future | None = None
        self._ticker: asyncio.Task | None = None
        self._stack = contextlib.AsyncExitStack()
        self._serial = ""

    # --- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> ModbusSim:
        if self.rtu == "pty":
            modem = await self._stack.enter_async_context(NullModem())
            self._serial, self.device = modem.a, modem.b
            self.modem = modem
        elif self.rtu:
            self._serial = self.device = self.rtu
        await self.start()
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc) -> None:
        await stop_task(self._ticker)
        await self.stop()
        await self._stack.aclose()

    async def start(self) -> None:
        """Start serving (again), with registers freshly initialised as after a power cycle."""
        # Unit 0 is pymodbus' catch-all: it stands for every unit id nobody serves.
        devices = [_device(u, self._action) for u in (0, *self.units)]
        if self._serial:
            self.server = ModbusSerialServer(
                devices, port=self._serial, baudrate=self.baudrate, trace_pdu=self._trace, reconnect_delay=0.1
            )
        else:
            self.server = ModbusTcpServer(devices, address=(self.host, self.port), trace_pdu=self._trace)
        await self.server.serve_forever(background=True)
        if not self._serial:
            self.port = self.server.transport.sockets[0].getsockname()[1]
        await self._refresh()

    async def stop(self) -> None:
        """Stop serving and drop every client connection (a PLC switched off)."""
        self._release_silent()
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def restart(self, downtime: float = 0.0) -> None:
        await self.stop()
        await asyncio.sleep(downtime)
        await self.start()

    # --- values --------------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self._t0

    def value(self, name: str, unit: int | None = None) -> Any:
        """The value a point has now (pinned or computed)."""
        unit = self.units[0] if unit is None else unit
        if (unit, name) in self.pinned:
            return self.pinned[(unit, name)]
        v = self.points[name].value
        return v(self.now()) if callable(v) else v

    async def set(self, name: str, value: Any, unit: int | None = None) -> None:
        """Pin a named point to `value` (on one unit, or on all) and write it; it no longer moves."""
        for u in self.units if unit is None else (unit,):
            self.pinned[(u, name)] = value
        await self._refresh()

    def release(self, name: str) -> None:
        for key in [k for k in self.pinned if k[1] == name]:
            del self.pinned[key]

    async def write(self, table: str, address: int, values: list, unit: int | None = None) -> None:
        """Write raw registers (ints) or bits (bools) into a table of one unit (or all)."""
        assert self.server is not None, "simulator not running"
        for u in self.units if unit is None else (unit,):
            self._internal = True
            try:
                await self.server.context.async_setValues(u, FC_READ[table], address, list(values))
            finally:
                self._internal = False

    async def put(self, table: str, address: int, type_: str, value: Any, order: str = "ABCD", length: int = 0, unit: int | None = None) -> list[int]:
        """Encode a typed value into registers (e.g. in the scratch area) and return the registers."""
        words = encode(type_, value, order, length)
        await self.write(table, address, words, unit)
        return words

    async def _refresh(self) -> None:
        if self.server is None:
            return
        t = self.now()
        for u in self.units:
            for p in self.points.values():
                if (u, p.name) in self.pinned:
                    v = self.pinned[(u, p.name)]
                elif self.moving or not callable(p.value):
                    v = p.value(t) if callable(p.value) else p.value
                else:
                    v = p.value(0.0)
                if p.type == "bool":
                    await self.write(p.table, p.address, [bool(v)], u)
                else:
                    await self.write(p.table, p.address, encode(p.type, v, p.order, p.length), u)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.period  # a fixed grid: the refresh's own time does not stretch the period
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due, loop.time() - self.period)
            if self.moving:
                await self._refresh()

    # --- faults and counting -------------------------------------------------------------------------

    def _trace(self, sending: bool, pdu):
        if not sending:
            self.requests += 1
            self.requests_by_unit[pdu.dev_id] += 1
            return pdu
        fault = self.faults.get(pdu.dev_id, self.fault)
        if isinstance(fault, tuple) and fault[0] == "short":
            # A broken gateway or firmware: the answer is well formed but carries fewer values than asked.
            if pdu.registers:
                pdu.registers = pdu.registers[: max(0, len(pdu.registers) - fault[1])]
            elif pdu.bits:
                pdu.bits = pdu.bits[: max(0, len(pdu.bits) - 8 * ((fault[1] + 7) // 8))]
        return pdu

    def _release_silent(self) -> None:
        # Swallowed requests are cancelled, never answered late (see the module invariants).
        if self._hold is not None and not self._hold.done():
            self._hold.cancel()
        self._hold = None

    async def _action(self, unit: int, fc: int, start: int, address: int, count: int, regs, values) -> ExcCodes | None:
        if self._internal:
            return None
        if unit == 0:
            # Nobody at that address: silence on a serial bus; a TCP gateway answers "target failed to respond".
            fault = "silent" if self._serial else ("exception", ExcCodes.GATEWAY_NO_RESPONSE)
        else:
            fault = self.faults.get(unit, self.fault)
        if fault is None or (isinstance(fault, tuple) and fault[0] == "short"):
            return None  # a short answer is cut in `_trace`, on its way out
        if fault == "silent":
            if self._hold is None or self._hold.done():
                self._hold = asyncio.get_running_loop().create_future()
            await self._hold  # never resolved; cancelled by stop()
        if isinstance(fault, tuple) and fault[0] == "exception":
            return ExcCodes(fault[1])
        raise ValueError(f"unknown fault {fault!r}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators modbus", description="Modbus PLC simulator; the register map is in the module docstring.")
    p.add_argument("--host", default="127.0.0.1", help="TCP address to listen on")
    p.add_argument("--port", type=int, default=5020, help="TCP port (0: a free one)")
    p.add_argument("--rtu", metavar="PORT", help="serve Modbus RTU on this serial port instead of TCP; 'pty' creates a pty pair and prints the device to open")
    p.add_argument("--baudrate", type=int, default=19200)
    p.add_argument("--units", type=int, nargs="+", default=[1], help="unit ids served (same map on each)")
    p.add_argument("--period", type=float, default=0.1, help="seconds between value updates")
    p.add_argument("--count", type=int, default=1, help="TCP only: this many PLCs on consecutive ports (benchmarks)")
    return p


async def _serve(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for i in range(1 if args.rtu else args.count):
            port = args.port + i if args.port else 0
            sim = await stack.enter_async_context(
                ModbusSim(args.host, port, tuple(args.units), rtu=args.rtu, baudrate=args.baudrate, period=args.period)
            )
            where = f"RTU on {sim.device}" if args.rtu else f"TCP on {sim.host}:{sim.port}"
            print(f"modbus simulator: {where}, units {', '.join(map(str, sim.units))}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    return until_interrupted(_serve(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
