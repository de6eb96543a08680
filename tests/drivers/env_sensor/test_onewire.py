"""The DS18B20 w1_slave parser: any text gives a finite temperature or a reason, never an exception."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from drivers.env_sensor.onewire import parse_w1_slave
from tests.drivers.fuzz import fuzz

GOOD = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"


def check(text: str) -> None:
    value, reason = parse_w1_slave(text)
    if reason is None:
        assert type(value) is float and math.isfinite(value) and -128 <= value < 128
    else:
        assert value is None and reason


def test_a_t_value_of_thousands_of_digits_is_unreadable():
    value, reason = parse_w1_slave(GOOD.replace("t=23125", "t=" + "1" * 5000))
    assert value is None and reason == "unreadable w1_slave: unexpected format"


def test_lines_that_disagree_on_the_scratchpad_are_unreadable():
    value, reason = parse_w1_slave(GOOD.replace("57 t=", "58 t="))
    assert value is None and "different scratchpads" in reason


@fuzz
@given(st.text(max_size=200))
def test_fuzz_any_text(text):
    check(text)


@fuzz
@given(st.lists(st.tuples(st.integers(0, len(GOOD)), st.integers(0, len(GOOD)), st.text(st.sampled_from("0123456789abcdef -=:\nYESNOt"), max_size=6)), max_size=4))
def test_fuzz_mutations_of_a_good_file(edits):
    text = GOOD
    for a, b, insert in edits:
        a, b = sorted((min(a, len(text)), min(b, len(text))))
        text = text[:a] + insert + text[b:]
    check(text)
