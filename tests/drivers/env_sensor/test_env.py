"""Temperature/humidity sensors against real ptys and a fake sysfs tree."""

from __future__ import annotations

import pytest

from drivers.env_sensor.config import EnvSensorConfig
from drivers.env_sensor.onewire import crc8, parse_w1_slave
from drivers.modbus.config import ModbusRtuConfig
from simulators.env import AsciiSensor, RtuBoard, write_ds18b20
from tests.drivers.readings import take  # noqa: F401 - used by the tests here

# --- Modbus RTU boards: a profile ----------------------------------------------------------------


async def test_two_boards_on_one_bus_one_stops_answering():
    async with RtuBoard(units=(1, 2), moving=False) as board:
        cfg = ModbusRtuConfig.model_validate({
            "kind": "modbus_rtu", "name": "hall", "port": board.device, "baudrate": 19200, "timeout": 0.2,
            "units": [
                {"unit": 1, "profile": "xy-md02", "interval": 0.05, "name": "north"},
                {"unit": 2, "profile": "xy-md02", "interval": 0.05, "name": "south",
                 "tags": {"temperature": {"limits": {"high": 30}}}},
            ],
        })
        driver = cfg.build()
        await driver.connect()
        try:
            got = {r.tag: r for r in await take(driver, 4)}
            assert got["north.temperature"].value == pytest.approx(23.1) and got["north.temperature"].unit == "degC"
            assert got["south.humidity"].value == pytest.approx(45.2) and got["south.humidity"].unit == "%"
            board.faults[2] = "silent"
            later = await take(driver, 12)
            south = [r for r in later if r.tag.startswith("south.")]
            north = [r for r in later if r.tag.startswith("north.")]
            assert south and all(r.quality == "bad" and "unit 2" in r.reason for r in south)
            assert len(north) >= 4 and all(r.quality == "good" for r in north)
        finally:
            await driver.aclose()


async def test_board_plausibility_from_the_profile():
    async with RtuBoard(units=(1,), moving=False) as board:
        await board.set("temperature", -500)  # -50.0 °C: below the board's range
        cfg = ModbusRtuConfig.model_validate({"kind": "modbus_rtu", "name": "b", "port": board.device, "baudrate": 19200,
                                              "units": [{"unit": 1, "profile": "xy-md02", "interval": 0.05}]})
        driver = cfg.build()
        await driver.connect()
        try:
            got = {r.tag: r for r in await take(driver, 2)}
        finally:
            await driver.aclose()
        assert got["unit1.temperature"].quality == "bad" and "implausible: -50.0 below -40" in got["unit1.temperature"].reason
        assert got["unit1.humidity"].quality == "good"


# --- serial ASCII ------------------------------------------------------------------------------------


def ascii_config(device, **serial):
    return EnvSensorConfig.model_validate({
        "kind": "env_sensor", "name": "oven",
        "serial": {"port": device, "baudrate": 9600, **serial},
        "tags": {"temperature": {"unit": "degC", "plausible": {"min": -40, "max": 125, "stuck_after": 0.5}},
                 "humidity": {"unit": "%"}},
    })


async def test_ascii_lines_garbage_and_silence():
    async with AsciiSensor(interval=0.03) as sensor:
        driver = ascii_config(sensor.device, stale_after=0.3).build()
        await driver.connect()
        try:
            got = await take(driver, 2)
            assert {(r.tag, r.value, r.unit, r.quality) for r in got} == {("temperature", 23.4, "degC", "good"), ("humidity", 45.1, "%", "good")}
            sensor.fault = "garbled"
            bad = await take(driver, 2, where=lambda r: r.quality == "bad")
            assert all(r.reason.startswith("garbled: not ASCII") and r.raw == b"T=2\xff3.#,H==??\r\n" for r in bad)
            sensor.fault = "silent"
            quiet = await take(driver, 2, where=lambda r: r.reason and r.reason.startswith("silent"))
            assert {r.tag for r in quiet} == {"temperature", "humidity"}
            sensor.fault = None
            sensor.set(temperature=150.0)
            high = await take(driver, 1, where=lambda r: r.tag == "temperature")
            assert high[0].quality == "bad" and "implausible: 150.0 above 125" in high[0].reason
            sensor.set(temperature=24.0)
            stuck = await take(driver, 1, where=lambda r: r.tag == "temperature" and r.quality == "bad", timeout=3)
            assert stuck[0].reason.startswith("stuck: 24.0 unchanged")
        finally:
            await driver.aclose()


async def test_ascii_custom_pattern():
    async with AsciiSensor(interval=0.03, fmt="{t:.2f} C {h:.0f} %RH\n") as sensor:
        cfg = EnvSensorConfig.model_validate({
            "kind": "env_sensor", "name": "s",
            "serial": {"port": sensor.device, "pattern": r"^(?P<t>-?\d+\.\d+) C (?P<rh>\d+) %RH$"},
        })
        driver = cfg.build()
        await driver.connect()
        try:
            got = {r.tag: r.value for r in await take(driver, 2)}
        finally:
            await driver.aclose()
        assert got == {"t": 23.4, "rh": 45.0}


def test_pattern_must_have_named_groups_and_tags_must_exist():
    with pytest.raises(ValueError, match="named group"):
        ascii_config("/dev/null", pattern=r"T=\d+")
    with pytest.raises(ValueError, match="not produced by this sensor"):
        EnvSensorConfig.model_validate({"kind": "env_sensor", "name": "s", "serial": {"port": "/dev/null"}, "tags": {"pressure": {}}})


# --- DS18B20 -------------------------------------------------------------------------------------------


def test_crc8_known_vector():
    # scratchpad of a real DS18B20 at 23.125 °C (0x0172) as printed by w1_therm
    assert crc8(bytes.fromhex("72014b467fff0e10")) == 0x57
    assert crc8(bytes.fromhex("72014b467fff0e1057")) == 0  # the CRC over data + CRC is zero


def test_parse_w1_slave_cases():
    good = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
    assert parse_w1_slave(good) == (23.125, None)
    value, reason = parse_w1_slave(good.replace("YES", "NO"))
    assert value is None and "kernel reports crc=57 NO" in reason
    value, reason = parse_w1_slave(good.replace("10 57", "10 58").replace("crc=57", "crc=58"))
    assert value is None and reason.startswith("CRC error: computed 57")
    assert parse_w1_slave("garbage")[1].startswith("unreadable")


async def test_ds18b20_good_crc_failure_power_on_and_missing(tmp_path):
    write_ds18b20(tmp_path, "28-000000000001", 23.125)
    write_ds18b20(tmp_path, "28-000000000002", 21.5, crc_ok=False)
    write_ds18b20(tmp_path, "28-000000000003", power_on=True)
    write_ds18b20(tmp_path, "28-000000000005", -10.0625)
    cfg = EnvSensorConfig.model_validate({
        "kind": "env_sensor", "name": "coldroom",
        "onewire": {"root": str(tmp_path), "interval": 1, "probes": [
            {"id": "28-000000000001", "name": "good"}, {"id": "28-000000000002", "name": "crc"},
            {"id": "28-000000000003", "name": "power_on"}, {"id": "28-000000000004", "name": "gone"},
            {"id": "28-000000000005", "name": "freezer"}]},
        "tags": {"freezer": {"limits": {"high": -15}}},
    })
    driver = cfg.build()
    await driver.connect()
    try:
        got = {r.tag if r.type == "telemetry" else "alarm": r for r in await take(driver, 6)}
    finally:
        await driver.aclose()
    assert got["good"].value == 23.125 and got["good"].quality == "good" and got["good"].unit == "degC"
    assert got["crc"].quality == "bad" and got["crc"].reason.startswith("CRC error") and b"crc=" in got["crc"].raw
    assert got["power_on"].quality == "bad" and "85 °C power-on" in got["power_on"].reason
    assert got["gone"].quality == "bad" and "not present" in got["gone"].reason
    assert got["freezer"].value == -10.0625
    assert got["alarm"].fields["alarm"] == "high" and got["alarm"].fields["state"] == "raised"
