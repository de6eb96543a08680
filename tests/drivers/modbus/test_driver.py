"""The Modbus driver against the real simulator: types, orders, merging, faults, rules, RTU on a pty."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from drivers.modbus.config import ModbusConfig, ModbusRtuConfig
from gateway.driver import each
from gateway.errors import NotConnected
from gateway.model import ALARM, TELEMETRY
from simulators.modbus import ModbusSim
from tests.conftest import eventually
from tests.drivers.readings import take

ORDERS = {"ABCD": ("big", "big"), "CDAB": ("little", "big"), "BADC": ("big", "little"), "DCBA": ("little", "little")}
VALUES = {
    "int16": -12345, "uint16": 54321, "int32": -123456789, "uint32": 3_000_000_000,
    "int64": -9_000_000_000_000, "uint64": 18_000_000_000_000_000_000,
    "float32": 3.5, "float64": -1234.5678901234,
}


def tcp(sim, tags, interval=0.05, **kw):
    return ModbusConfig(kind="modbus", name="plc", host="127.0.0.1", port=sim.port, timeout=0.3,
                        polls=[{"interval": interval, "tags": tags}], **kw).build()


async def test_every_type_and_order_decodes_to_what_the_simulator_wrote(sim):
    tags, expect, address = [], {}, 100
    for (type_, value), order in itertools.product(VALUES.items(), ORDERS):
        words = await sim.put("holding", address, type_, value, order)
        wo, bo = ORDERS[order]
        name = f"{type_}_{order}"
        tags.append({"name": name, "address": address, "type": type_, "word_order": wo, "byte_order": bo})
        expect[name] = value
        address += len(words)
    await sim.put("holding", address, "string", "Lot-7781", "AB", length=10)
    tags.append({"name": "text", "address": address, "type": "string", "length": 10})
    expect["text"] = "Lot-7781"
    await sim.write("holding", address + 5, [0b1010_0000_0000_0001])
    for bit, value in ((0, True), (1, False), (13, True), (15, True)):
        tags.append({"name": f"bit{bit}", "address": address + 5, "type": "bit", "bit": bit})
        expect[f"bit{bit}"] = value
    await sim.write("coil", 100, [True, False, True])
    await sim.write("discrete", 101, [True])
    tags += [{"name": "coil100", "table": "coil", "address": 100, "type": "bool"},
             {"name": "coil102", "table": "coil", "address": 102, "type": "bool"},
             {"name": "di101", "table": "discrete", "address": 101, "type": "bool"}]
    expect |= {"coil100": True, "coil102": True, "di101": True}
    assert address + 6 <= 200
    driver = tcp(sim, tags)
    await driver.connect()
    try:
        before = sim.requests
        got = {r.tag: r for r in await take(driver, len(tags))}
        requests = sim.requests - before
    finally:
        await driver.aclose()
    for name, value in expect.items():
        assert got[name].quality == "good", (name, got[name].reason)
        if isinstance(value, float):
            assert got[name].value == pytest.approx(value, rel=1e-6), name
        else:
            assert got[name].value == value, name
    # 38 tags in three tables: one request per table
    assert requests == 3 < len(tags)


async def test_simulator_map_with_scale_units_and_reference_numbers(sim):
    driver = tcp(sim, [
        {"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC"},
        {"name": "cycle_counter", "register": 40005, "type": "uint32"},
        {"name": "motor_current", "address": 7, "type": "int16", "scale": 0.1, "unit": "A"},
        {"name": "temperature_setpoint", "address": 10, "type": "float32", "word_order": "little"},
        {"name": "energy_total", "address": 12, "type": "float64"},
        {"name": "part_counter", "address": 16, "type": "int64"},
        {"name": "recipe", "address": 20, "type": "string", "length": 16},
        {"name": "running", "address": 9, "type": "bit", "bit": 0},
        {"name": "fault", "address": 9, "type": "bit", "bit": 3},
        {"name": "oil_temperature", "register": 30001, "type": "int16", "scale": 0.1, "offset": 0.05},
        {"name": "pump_on", "register": 1, "type": "bool"},
        {"name": "part_present", "register": 10003, "type": "bool"},
    ])
    await driver.connect()
    try:
        got = {r.tag: r for r in await take(driver, 12)}
    finally:
        await driver.aclose()
    assert got["press_temperature"].value == pytest.approx(180.0) and got["press_temperature"].unit == "degC"
    assert got["cycle_counter"].value == 100000
    assert got["motor_current"].value == pytest.approx(12.5) and got["motor_current"].unit == "A"
    assert got["temperature_setpoint"].value == 180.0
    assert got["energy_total"].value == pytest.approx(12345.6)
    assert got["part_counter"].value == 5_000_000_000
    assert got["recipe"].value == "RCP-A42"
    assert got["running"].value is True and got["fault"].value is False
    assert got["oil_temperature"].value == pytest.approx(45.25)
    assert got["pump_on"].value is True and got["part_present"].value is False


async def test_merging_respects_max_registers_and_gaps(sim):
    tags = [{"name": f"r{a}", "address": a} for a in range(0, 200, 2)]  # 100 tags, gap 1
    driver = tcp(sim, tags, max_registers=50)
    await driver.connect()
    try:
        before = sim.requests
        await take(driver, 100)
        assert sim.requests - before == 4  # 199 registers / 50
    finally:
        await driver.aclose()
    driver = tcp(sim, [{"name": "a", "address": 0}, {"name": "b", "address": 30}], max_gap=8)
    await driver.connect()
    try:
        before = sim.requests
        await take(driver, 2)
        assert sim.requests - before == 2  # gap of 29 > 8: two requests
    finally:
        await driver.aclose()


async def test_exception_response_is_bad_data_and_recovers(sim):
    driver = tcp(sim, [{"name": "a", "address": 0, "type": "float32"}, {"name": "b", "address": 6}])
    await driver.connect()
    try:
        sim.fault = ("exception", 4)
        bad = await take(driver, 2)
        assert {r.tag for r in bad} == {"a", "b"}
        assert all(r.quality == "bad" and r.reason == "modbus exception 4: server device failure" for r in bad)
        assert all(r.fields == {"exception_code": 4} for r in bad)
        sim.fault = None
        good = await take(driver, 2, where=lambda r: r.quality == "good")
        assert {r.tag for r in good} == {"a", "b"}
    finally:
        await driver.aclose()


async def test_an_illegal_address_in_a_merged_request_costs_only_its_tag(sim):
    driver = tcp(sim, [{"name": "ok", "address": 196}, {"name": "past_end", "address": 203}])
    await driver.connect()
    try:
        got = {r.tag: r for r in await take(driver, 2)}
        assert got["ok"].quality == "good"
        assert got["past_end"].quality == "bad" and got["past_end"].fields == {"exception_code": 2}
        before = sim.requests
        await take(driver, 2)
        assert sim.requests - before == 2  # split for good: no more doomed merged request
    finally:
        await driver.aclose()


async def test_nan_is_bad_with_raw_bytes(sim):
    await sim.put("holding", 150, "float32", float("nan"))
    driver = tcp(sim, [{"name": "x", "address": 150, "type": "float32"}])
    await driver.connect()
    try:
        (r,) = await take(driver, 1)
    finally:
        await driver.aclose()
    assert r.quality == "bad" and "nan" in r.reason and r.raw == b"\x7f\xc0\x00\x00"


async def test_an_answer_with_fewer_registers_than_asked_is_bad_for_the_tags_it_misses(sim):
    tags = [{"name": "a", "address": 0, "type": "float32"}, {"name": "b", "address": 2, "type": "float32"},
            {"name": "c", "address": 4, "type": "uint16"}, {"name": "pump", "table": "coil", "address": 0, "type": "bool"},
            {"name": "horn", "table": "coil", "address": 9, "type": "bool"}]
    driver = tcp(sim, tags)
    await driver.connect()
    try:
        sim.fault = ("short", 2)  # registers 0..2 of 0..4 come back; coils 0..7 of 0..9
        got = {r.tag: r for r in await take(driver, 5)}
        assert got["a"].quality == "good" and got["a"].value == 180.0
        assert got["b"].quality == "bad" and got["b"].reason == "answer holds 3 of 5 registers asked"
        assert len(got["b"].raw) == 2  # the one of its registers that came
        assert got["c"].quality == "bad" and got["c"].raw == b""
        assert got["pump"].quality == "good" and got["pump"].value is True
        assert got["horn"].quality == "bad" and got["horn"].reason == "answer holds 8 of 10 bits"
        assert driver.counters["short_responses"] >= 2
        sim.fault = None
        good = await take(driver, 5, where=lambda r: r.quality == "good" and r.tag in ("b", "c", "horn"))
        assert {r.tag for r in good} == {"b", "c", "horn"}
    finally:
        await driver.aclose()


async def test_a_value_that_scales_past_float_range_is_bad_never_a_good_infinity(sim):
    await sim.put("holding", 150, "float64", 1e300)
    driver = tcp(sim, [{"name": "x", "address": 150, "type": "float64", "scale": 1e10}])
    await driver.connect()
    try:
        (r,) = await take(driver, 1)
    finally:
        await driver.aclose()
    assert r.quality == "bad" and r.value is None and "out of range" in r.reason
    assert driver.counters["decode_errors"] >= 1


async def test_strings_keep_trailing_blanks_and_lose_only_the_nul_padding(sim):
    await sim.put("holding", 150, "string", "LOT 7  ", "AB", length=12)
    driver = tcp(sim, [{"name": "lot", "address": 150, "type": "string", "length": 12}])
    await driver.connect()
    try:
        (r,) = await take(driver, 1)
    finally:
        await driver.aclose()
    assert r.quality == "good" and r.value == "LOT 7  "


async def test_tcp_timeout_is_a_lost_link_and_restart_reconnects(sim):
    driver = tcp(sim, [{"name": "a", "address": 6}])
    await driver.connect()
    await take(driver, 1)
    sim.fault = "silent"
    with pytest.raises(NotConnected, match="no answer within 0.3 s"):
        await take(driver, 1)
    await driver.aclose()
    sim.fault = None
    await sim.stop()
    with pytest.raises(NotConnected):
        await driver.connect()
    await driver.aclose()
    await sim.start()
    await driver.connect()
    try:
        assert (await take(driver, 1))[0].value == 1450
        await sim.restart()
        with pytest.raises(NotConnected):
            await take(driver, 5)
    finally:
        await driver.aclose()


async def test_tcp_connect_to_a_plc_that_accepts_but_does_not_answer_is_not_connected(sim):
    sim.fault = "silent"
    driver = tcp(sim, [{"name": "a", "address": 6}])
    try:
        with pytest.raises(NotConnected, match="no answer within 0.3 s"):
            await driver.connect()
    finally:
        await driver.aclose()
    sim.fault = ("exception", 4)  # an exception response is an answer: the PLC is there
    try:
        await driver.connect()
    finally:
        await driver.aclose()


async def test_deadband_heartbeat_and_limits(sim):
    await sim.set("press_temperature", 180.0)
    driver = tcp(sim, [{"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC",
                        "deadband": 0.5, "heartbeat": 0.4,
                        "limits": {"high": 190, "high_high": 200, "hysteresis": 1}}], interval=0.02)
    await driver.connect()
    seen = []

    async def consume():
        async for got in driver.readings():
            seen.extend(each(got))

    def sent(*values):
        return [r for r in seen if r.type == TELEMETRY and round(r.value, 3) in values]

    def alarm(state):
        return any(r.type == ALARM and r.fields["state"] == state for r in seen)

    task = asyncio.create_task(consume())
    try:
        await eventually(lambda: len(sent(180.0)) >= 2, what="the first value and its heartbeat")
        await sim.set("press_temperature", 180.3)  # inside the deadband
        polls = driver.requests
        await eventually(lambda: driver.requests >= polls + 25, what="polls inside the deadband")
        await sim.set("press_temperature", 195.0)  # raises high
        await eventually(lambda: alarm("raised") and sent(195.0), what="the raised alarm")
        await sim.set("press_temperature", 185.0)  # clears high
        await eventually(lambda: alarm("cleared") and sent(185.0), what="the cleared alarm")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.aclose()
    telemetry = [r for r in seen if r.type == TELEMETRY]
    values = [round(r.value, 3) for r in telemetry]
    polls = driver.requests
    assert polls > 40 and len(telemetry) < 12  # ~50 polls, a handful sent
    assert values[0] == 180.0 and 195.0 in values and values[-1] == 185.0
    # the heartbeat sent an unchanged value after 0.4 s
    firsts = [r for r in telemetry if round(r.value, 3) in (180.0, 180.3)]
    assert len(firsts) >= 2 and firsts[1].ts - firsts[0].ts >= 0.4
    alarms = [(r.fields["alarm"], r.fields["state"], r.value) for r in seen if r.type == ALARM]
    assert alarms == [("high", "raised", 195.0), ("high", "cleared", 185.0)]


async def test_rtu_two_units_on_a_pty_one_stops_answering():
    async with ModbusSim(rtu="pty", units=(1, 2), moving=False) as sim:
        cfg = ModbusRtuConfig(
            kind="modbus_rtu", name="bus", port=sim.device, baudrate=19200, timeout=0.2,
            units=[
                {"unit": 1, "polls": [{"interval": 0.05, "tags": [{"name": "u1.speed", "address": 6}, {"name": "u1.temp", "address": 0, "type": "float32"}]}]},
                {"unit": 2, "polls": [{"interval": 0.05, "tags": [{"name": "u2.speed", "address": 6}]}]},
            ],
        )
        driver = cfg.build()
        await driver.connect()
        try:
            got = await take(driver, 6)
            assert {r.tag for r in got} == {"u1.speed", "u1.temp", "u2.speed"} and all(r.quality == "good" for r in got)
            sim.faults[2] = "silent"
            got = await take(driver, 12)
            u2 = [r for r in got if r.tag == "u2.speed"]
            u1 = [r for r in got if r.tag.startswith("u1.")]
            assert u2 and all(r.quality == "bad" and r.reason.startswith("timeout: unit 2") for r in u2)
            assert len(u1) >= 6 and all(r.quality == "good" for r in u1)
            assert u1[-1].ts > u2[0].ts  # unit 1 kept flowing after unit 2 went quiet
            sim.faults[2] = None
            back = await take(driver, 1, where=lambda r: r.tag == "u2.speed" and r.quality == "good")
            assert back[0].value == 1450
        finally:
            await driver.aclose()
