"""The Modbus simulator itself: its map, faults, request counter and restart, seen by a plain pymodbus client."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from simulators.modbus import ModbusSim, encode
from tests.conftest import eventually


@pytest.mark.parametrize(
    ("order", "words"),
    [("ABCD", [0x3F80, 0x0000]), ("CDAB", [0x0000, 0x3F80]), ("BADC", [0x803F, 0x0000]), ("DCBA", [0x0000, 0x803F])],
)
def test_encode_float32_orders(order, words):
    assert encode("float32", 1.0, order) == words


def test_encode_wide_and_string():
    assert encode("int64", -2, "ABCD") == [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE]
    assert encode("float64", 1.0, "DCBA") == [0, 0, 0, 0xF03F]
    assert encode("string", "AB", "AB", length=4) == [0x4142, 0]
    assert encode("string", "AB", "BA", length=2) == [0x4241]


async def test_map_over_tcp():
    async with ModbusSim(port=0, moving=False) as sim:
        async with AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0) as c:
            regs = (await c.read_holding_registers(0, count=34, device_id=1)).registers
            raw = b"".join(r.to_bytes(2, "big") for r in regs)
            assert struct.unpack(">f", raw[0:4])[0] == pytest.approx(180.0)
            assert struct.unpack(">I", raw[8:12])[0] == 100000
            assert regs[6] == 1450 and regs[9] == 0b0111
            # CDAB: the words of 180.0 swapped
            assert struct.unpack(">f", raw[22:24] + raw[20:22])[0] == 180.0
            assert struct.unpack(">q", raw[32:40])[0] == 5_000_000_000
            assert raw[40:56].rstrip(b"\0") == b"RCP-A42"
            coils = (await c.read_coils(0, count=4, device_id=1)).bits[:4]
            assert coils == [True, False, False, True]
            assert (await c.read_discrete_inputs(0, count=2, device_id=1)).bits[:2] == [True, True]
            ir = (await c.read_input_registers(0, count=2, device_id=1)).registers
            assert ir == [452, 455]


async def test_values_move_unless_pinned():
    async with ModbusSim(port=0, period=0.02) as sim:
        async with AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0) as c:
            seen = set()

            async def moved():
                seen.add(tuple((await c.read_holding_registers(2, count=2, device_id=1)).registers))
                return len(seen) > 1

            await eventually(moved, every=0.03, what="hydraulic_pressure to move")
            await sim.set("hydraulic_pressure", 123.25)
            pinned_at = sim.now()
            while sim.now() < pinned_at + 5 * 0.02:  # five of the simulator's periods: it would have moved
                regs = (await c.read_holding_registers(2, count=2, device_id=1)).registers
                assert regs == encode("float32", 123.25)
                await asyncio.sleep(0.01)


async def test_faults_and_request_counter():
    async with ModbusSim(port=0) as sim:
        async with AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.3, retries=0) as c:
            assert not (await c.read_holding_registers(0, count=2, device_id=1)).isError()
            sim.fault = ("exception", 6)
            rsp = await c.read_holding_registers(0, count=2, device_id=1)
            assert rsp.isError() and rsp.exception_code == 6
            sim.fault = "silent"
            with pytest.raises(ModbusIOException):
                await c.read_holding_registers(0, count=2, device_id=1)
            sim.fault = None
            assert not (await c.read_holding_registers(0, count=2, device_id=1)).isError()
            bad = await c.read_holding_registers(199, count=2, device_id=1)
            assert bad.isError() and bad.exception_code == 2  # past the map
            assert sim.requests == 5 and sim.requests_by_unit[1] == 5


async def test_restart_keeps_port_and_drops_clients():
    async with ModbusSim(port=0) as sim:
        port = sim.port
        c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0, reconnect_delay=0)
        assert await c.connect()
        await sim.stop()
        await eventually(lambda: not c.connected, what="the client to notice")
        await sim.start()
        assert sim.port == port
        c.close()
        c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0, reconnect_delay=0)
        assert await c.connect()
        assert not (await c.read_holding_registers(0, count=2, device_id=1)).isError()
        c.close()


async def test_rtu_two_units_on_a_pty_one_silent():
    async with ModbusSim(rtu="pty", units=(1, 2), moving=False) as sim:
        c = AsyncModbusSerialClient(sim.device, timeout=0.3, retries=0, baudrate=19200, reconnect_delay=0)
        assert await c.connect()
        try:
            for unit in (1, 2):
                assert (await c.read_holding_registers(6, count=1, device_id=unit)).registers == [1450]
            with pytest.raises(ModbusIOException):  # nobody at unit 3 on a serial bus
                await c.read_holding_registers(6, count=1, device_id=3)
            sim.faults[2] = "silent"
            with pytest.raises(ModbusIOException):
                await c.read_holding_registers(6, count=1, device_id=2)
            assert (await c.read_holding_registers(6, count=1, device_id=1)).registers == [1450]
            assert sim.requests_by_unit == {1: 2, 2: 2, 3: 1}
        finally:
            c.close()


def test_command_line_serves_tcp():
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators", "modbus", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("modbus simulator: TCP on 127.0.0.1:"), line
        port = int(line.split(":")[2].split(",")[0])

        async def read():
            async with AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0) as c:
                return (await c.read_holding_registers(6, count=1, device_id=1)).registers

        assert len(asyncio.run(read())) == 1
    finally:
        proc.terminate()
        proc.wait(5)
