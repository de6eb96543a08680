"""Modbus TCP polling. Transport failures mean reconnect; exception responses are bad-quality data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse

from drivers.modbus.codec import Block, decode, plan
from drivers.modbus.config import ModbusConfig
from gateway.errors import NotConnected
from gateway.model import Reading

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


class Modbus:
    def __init__(self, cfg: ModbusConfig):
        self.cfg = cfg
        self.groups = [(g.interval, plan(list(g.tags), cfg.max_gap)) for g in cfg.polls]
        self.client: AsyncModbusTcpClient | None = None

    async def connect(self) -> None:
        self.client = AsyncModbusTcpClient(self.cfg.host, port=self.cfg.port, timeout=self.cfg.timeout, retries=0)
        if not await self.client.connect():
            raise NotConnected(f"no Modbus TCP connection to {self.cfg.host}:{self.cfg.port}")

    async def readings(self) -> AsyncIterator[Reading]:
        loop = asyncio.get_running_loop()
        due = [loop.time()] * len(self.groups)
        while True:
            now = loop.time()
            for i, (interval, blocks) in enumerate(self.groups):
                if due[i] > now:
                    continue
                for block in blocks:
                    for reading in await self._read(block):
                        yield reading
                due[i] += interval
                now = loop.time()
                if due[i] <= now:  # overran: skip missed polls instead of bursting
                    due[i] += ((now - due[i]) // interval + 1) * interval
            await asyncio.sleep(max(0.0, min(due) - loop.time()))

    async def _read(self, block: Block) -> list[Reading]:
        client = self.client
        assert client is not None
        if not client.connected:
            raise NotConnected("connection closed by the device")
        call = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }[block.table]
        try:
            rsp = await call(block.start, count=block.count, device_id=self.cfg.unit)
        except ModbusException as exc:
            raise NotConnected(f"{block.table} {block.start}+{block.count}: {exc}") from exc
        now = time.time()
        if rsp.isError():
            code = rsp.exception_code if isinstance(rsp, ExceptionResponse) else None
            reason = f"modbus exception {code}: {EXCEPTION_NAMES.get(code, 'unknown')}" if code else f"error response {rsp}"
            return [Reading(t.name, None, now, "bad", t.unit, reason) for t in block.tags]
        out = []
        if block.table in ("coil", "discrete"):
            for t in block.tags:
                out.append(Reading(t.name, bool(rsp.bits[t.address - block.start]), now, "good", t.unit))
        else:
            regs = rsp.registers
            for t in block.tags:
                off = t.address - block.start
                out.append(Reading(t.name, decode(t, regs[off : off + t.width]), now, "good", t.unit))
        return out

    async def aclose(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
