"""The serial ASCII sensor's line parser: any bytes give finite good values or bad readings with a reason."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from drivers.env_sensor.config import EnvSensorConfig
from drivers.env_sensor.serial import number
from simulators.env import AsciiSensor
from tests.drivers.fuzz import fuzz
from tests.drivers.readings import take

LOOSE = r"T=(?P<temperature>\S+),H=(?P<humidity>\S*)"  # lets anything through: the number check must hold


def sensor(pattern: str | None = None, port: str = "/dev/null", max_line: int = 256):
    serial = {"port": port, "max_line": max_line} | ({"pattern": pattern} if pattern else {})
    return EnvSensorConfig.model_validate({"kind": "env_sensor", "name": "s", "serial": serial}).build()


def check(readings, line: bytes) -> None:
    for r in readings:
        assert r.tag in ("temperature", "humidity")
        if r.quality == "good":
            assert type(r.value) is float and math.isfinite(r.value)
        else:
            assert r.quality == "bad" and r.value is None and r.reason


def test_overflowing_and_non_numbers_are_bad():
    parse = sensor(LOOSE, max_line=1024).parse
    for text in ("1e400", "-1e400", "nan", "NaN", "inf", "-Infinity", "1_000", "0x10", "1" * 400):
        (t, _) = parse(f"T={text},H=1\r\n".encode())
        assert t.quality == "bad" and t.value is None and "not a finite number" in t.reason, text
    (t,) = [r for r in sensor(max_line=1024).parse(b"T=" + b"9" * 400 + b".5,H=1\n") if r.tag == "temperature"]
    assert t.quality == "bad"  # the default pattern matches 400 digits: a float overflow, not a good inf
    assert [r.value for r in parse(b"T=-2.5e1,H=.5\n")] == [-25.0, 0.5]


async def test_infinity_from_a_sensor_line_is_a_bad_reading_and_counted():
    async with AsciiSensor(interval=0.03, fmt="T=1e400,H={h:.1f}\r\n") as sim:
        driver = sensor(LOOSE, sim.device)
        await driver.connect()
        try:
            got = {r.tag: r for r in await take(driver, 2)}
        finally:
            await driver.aclose()
    assert got["temperature"].quality == "bad" and got["temperature"].raw == b"T=1e400,H=45.1\r\n"
    assert got["humidity"].quality == "good" and got["humidity"].value == 45.1
    assert driver.counters["garbled_lines"] >= 1


@fuzz
@given(st.binary(max_size=300), st.sampled_from([None, LOOSE]))
def test_fuzz_any_line(line, pattern):
    check(sensor(pattern).parse(line), line)


numberish = st.text(st.sampled_from("0123456789+-.eE_naifINFx "), max_size=12)


@fuzz
@given(numberish, numberish, st.sampled_from([None, LOOSE]), st.sampled_from(["\r\n", "\n", ""]))
def test_fuzz_lines_close_to_valid(t, h, pattern, end):
    line = f"T={t},H={h}{end}".encode()
    check(sensor(pattern).parse(line), line)


@fuzz
@given(st.text(max_size=30))
def test_fuzz_number_is_none_or_finite(text):
    value = number(text)
    assert value is None or math.isfinite(value)
