"""Modbus polling over TCP (one unit) or RTU (one serial bus, several units).

Invariants:
- One request at a time per connection: polls run one after another in a single task, so a bus never
  sees two requests in flight; on RTU the inter-frame silence (3.5 characters, at least 1.75 ms) is
  kept before every request.
- An exception response is data: every tag of that request becomes a bad reading with the code. A
  merged request refused with "illegal data address" is split into one request per tag for good, so a
  single unmapped register in a gap costs only its own tag.
- An answer with fewer registers (or bits) than asked makes bad readings of the tags it does not
  cover, with the count in `reason`; the tags it covers are decoded. Nothing a device sends raises.
- On TCP a timeout or transport error means the link is lost: `NotConnected`, and the supervisor
  reconnects. `connect()` returns only once the PLC answered one request: an accepted TCP connection
  alone is not a device that is up. On RTU a timeout is the unit's fault, not the bus's: only that unit's tags go bad and the
  other units keep flowing; a failing port is a lost link.
- Polls that overran skip missed ticks instead of bursting.
- pymodbus logs every timeout at ERROR with a frame dump; that is per-poll noise the supervisor
  already reports once per state change, so its logger is raised to CRITICAL here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ExceptionResponse

from drivers.common.rules import Step, chain, inert
from drivers.modbus.codec import Block, plan
from drivers.modbus.config import ModbusConfig, ModbusRtuConfig, PollGroup
from gateway.kit import PERIOD_BUCKETS, Histogram, NotConnected, Reading

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
READ = {"holding": "read_holding_registers", "input": "read_input_registers", "coil": "read_coils", "discrete": "read_discrete_inputs"}


@dataclass
class Group:
    interval: float
    blocks: list[Block]
    name: str = ""
    due: float = 0.0
    polled: float | None = None  # when the last poll of this group started (loop time)


@dataclass
class UnitPlan:
    id: int
    timeout: float
    groups: list[Group] = field(default_factory=list)


def _plans(unit: int, timeout: float, polls: list[PollGroup], max_gap: int, max_registers: int) -> UnitPlan:
    return UnitPlan(unit, timeout, [Group(g.interval, plan(list(g.tags), max_gap, max_registers), f"unit{unit}/poll{i}") for i, g in enumerate(polls)])


class Modbus:
    def __init__(self, make_client: Callable[[], object], units: list[UnitPlan], where: str, serial_gap: float | None):
        self.make_client = make_client
        self.units = units
        self.where = where
        self.serial_gap = serial_gap  # None on TCP
        self.steps: dict[str, Step] = {}  # tags without rules pass as read
        for u in units:
            for g in u.groups:
                for b in g.blocks:
                    for t in b.tags:
                        if not inert(t):
                            self.steps[t.name] = chain(t)[0]
        self.client = None
        self._quiet_since = 0.0
        self.requests = 0
        # Faults the readings show one by one, as totals for `status`.
        # Achieved time between polls per group; the supervisor hands in the device's own dict so
        # the figures last across reconnects.
        self.periods: dict[str, Histogram] = {}
        self.counters = {"exception_responses": 0, "timeouts": 0, "short_responses": 0, "long_responses": 0, "decode_errors": 0}

    @classmethod
    def tcp(cls, cfg: ModbusConfig) -> Modbus:
        def make():
            return AsyncModbusTcpClient(cfg.host, port=cfg.port, timeout=cfg.timeout, retries=0, reconnect_delay=0)

        unit = _plans(cfg.unit, cfg.timeout, list(cfg.polls), cfg.max_gap, cfg.max_registers)
        return cls(make, [unit], f"{cfg.host}:{cfg.port}", None)

    @classmethod
    def rtu(cls, cfg: ModbusRtuConfig) -> Modbus:
        def make():
            # the client's own timeout is a backstop; each unit's timeout is enforced around the call
            longest = max(u.timeout or cfg.timeout for u in cfg.units)
            return AsyncModbusSerialClient(
                cfg.port, baudrate=cfg.baudrate, bytesize=cfg.bytesize, parity=cfg.parity, stopbits=cfg.stopbits,
                timeout=longest + 1, retries=0, reconnect_delay=0,
            )

        units = [_plans(u.unit, u.timeout or cfg.timeout, u.groups(), cfg.max_gap, cfg.max_registers) for u in cfg.units]
        char = (1 + cfg.bytesize + (cfg.parity != "N") + cfg.stopbits) / cfg.baudrate
        return cls(make, units, cfg.port, max(3.5 * char, 0.00175))

    async def connect(self) -> None:
        self.client = self.make_client()
        if not await self.client.connect():
            raise NotConnected(f"cannot open Modbus {'RTU port' if self.serial_gap else 'TCP connection to'} {self.where}")
        if self.serial_gap is None:
            # A PLC whose TCP stack accepts connections while its controller does not answer is not
            # connected: one real request proves it (NotConnected on timeout; an exception response is
            # an answer). Without it a silent PLC became a connected/lost pair per retry.
            unit = self.units[0]
            group = unit.groups[0]
            await self._read(unit, group, group.blocks[0])

    async def readings(self) -> AsyncIterator[Reading | list[Reading]]:
        loop = asyncio.get_running_loop()
        steps = self.steps
        start = loop.time()
        for u in self.units:
            for g in u.groups:
                g.due = start  # the first poll at once; the next ones on the grid (below)
        while True:
            for u in self.units:
                for g in u.groups:
                    now = loop.time()
                    if g.due > now:
                        continue
                    first = g.polled is None
                    if not first:
                        hist = self.periods.get(g.name)
                        if hist is None:
                            hist = self.periods[g.name] = Histogram(PERIOD_BUCKETS)
                        hist.observe(now - g.polled)
                    g.polled = now
                    poll: list[Reading] = []  # one poll is one batch: the core stores it as one row
                    try:
                        for block in list(g.blocks):
                            for r in await self._read(u, g, block):
                                step = steps.get(r.tag)
                                if step is None:
                                    poll.append(r)
                                else:
                                    poll.extend(step(r))
                    except BaseException:
                        if poll:  # the blocks read before the link dropped are captured all the same
                            yield poll
                        raise
                    if poll:
                        yield poll
                    if first:
                        # Then on a grid of its interval (one clock for the whole process): groups of
                        # several PLCs with the same interval fall due together and share one commit.
                        g.due = (now // g.interval + 1) * g.interval
                        if g.due - now < g.interval / 2:
                            g.due += g.interval
                    else:
                        g.due += g.interval
                    now = loop.time()
                    if g.due <= now:  # overran: skip missed polls instead of bursting
                        g.due += ((now - g.due) // g.interval + 1) * g.interval
            await asyncio.sleep(max(0.0, min(g.due for u in self.units for g in u.groups) - loop.time()))

    async def _read(self, unit: UnitPlan, group: Group, block: Block) -> list[Reading]:
        client = self.client
        if client is None or not client.connected:
            raise NotConnected(f"Modbus link to {self.where} closed")
        if self.serial_gap is not None:
            wait = self._quiet_since + self.serial_gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # inter-frame silence on the bus, not a retry
        call = getattr(client, READ[block.table])
        self.requests += 1
        try:
            async with asyncio.timeout(unit.timeout):  # not wait_for: that costs a task per request
                rsp = await call(block.start, count=block.count, device_id=unit.id)
        except (TimeoutError, ModbusIOException) as exc:
            if self.serial_gap is None:
                raise NotConnected(f"{self.where} unit {unit.id}: no answer within {unit.timeout} s") from exc
            self.counters["timeouts"] += 1
            reason = f"timeout: unit {unit.id} did not answer within {unit.timeout} s"
            return self._bad(block, reason)
        except (ConnectionException, ModbusException, OSError) as exc:
            raise NotConnected(f"{self.where} unit {unit.id}: {exc}") from exc
        finally:
            self._quiet_since = time.monotonic()
        if rsp.isError():
            code = rsp.exception_code if isinstance(rsp, ExceptionResponse) else None
            if code == 2 and len(block.tags) > 1:
                # the merged request spans an address the device refuses: read these tags one by one from now on
                i = group.blocks.index(block)
                group.blocks[i : i + 1] = [Block(block.table, t.address, t.width, (t,)) for t in block.tags]
                out = []
                for single in group.blocks[i : i + len(block.tags)]:
                    out += await self._read(unit, group, single)
                return out
            self.counters["exception_responses"] += 1
            name = EXCEPTION_NAMES.get(code, "unknown") if code else str(rsp)
            return self._bad(block, f"modbus exception {code}: {name}" if code else f"error response {rsp}", code)
        if block.table in ("coil", "discrete"):
            return self._bits(block, list(rsp.bits))
        return self._registers(block, list(rsp.registers))

    def _bits(self, block: Block, bits: list[bool]) -> list[Reading]:
        # pymodbus pads bits to whole bytes, so only a shortfall is detectable
        now = time.time()
        if len(bits) < block.count:
            self.counters["short_responses"] += 1
        out = []
        for t in block.tags:
            off = t.address - block.start
            if off < len(bits):
                out.append(Reading(t.name, bool(bits[off]), now, "good", t.unit))
            else:
                out.append(Reading(t.name, None, now, "bad", t.unit, f"answer holds {len(bits)} of {block.count} bits"))
        return out

    def _registers(self, block: Block, regs: list[int]) -> list[Reading]:
        now = time.time()
        if len(regs) != block.count:
            # A device answering with another count than asked: tags whose registers are all there still
            # decode (their place in the answer is known), the others are bad with the count.
            self.counters["short_responses" if len(regs) < block.count else "long_responses"] += 1
        values, faults = block.decode(regs)
        out = [Reading(t.name, v, now, "good", t.unit) for t, v in zip(block.tags, values)]
        for i, reason, words in faults:
            t = block.tags[i]
            if len(words) < t.width:
                reason = f"answer holds {len(regs)} of {block.count} registers asked"
            else:
                self.counters["decode_errors"] += 1
            raw = b"".join((w & 0xFFFF).to_bytes(2, "big") for w in words)
            out[i] = Reading(t.name, None, now, "bad", t.unit, reason, raw=raw)
        return out

    @staticmethod
    def _bad(block: Block, reason: str, code: int | None = None) -> list[Reading]:
        now = time.time()
        fields = {"exception_code": code} if code is not None else None
        return [Reading(t.name, None, now, "bad", t.unit, reason, fields=fields) for t in block.tags]

    async def aclose(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
