

def test_float32_is_the_shortest_decimal_of_the_same_bits():
    import struct

    from drivers.modbus.codec import decode
    from drivers.modbus.config import Tag

    tag = Tag(name="t", address=0, type="float32")
    for value in (180.08447265625, 0.1, 12345.678, -3.4028234663852886e38, 1e-45):
        bits = struct.pack(">f", value)
        got, err = decode(tag, [int.from_bytes(bits[:2], "big"), int.from_bytes(bits[2:], "big")])
        assert err is None and struct.pack(">f", got) == bits  # the very same float32
        assert len(repr(got)) <= len(repr(struct.unpack(">f", bits)[0]))
    scaled = Tag(name="s", address=0, type="int16", scale=0.1)
    assert decode(scaled, [127]) == (12.7, None)


# --- fuzz: any register list decodes to a value or a reason; pymodbus' own encoders as the reference -----

import math  # noqa: E402
import struct  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin  # noqa: E402

from drivers.modbus.codec import decode  # noqa: E402
from drivers.modbus.config import WIDTH, Tag  # noqa: E402
from tests.drivers.fuzz import fuzz  # noqa: E402

NUMERIC = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
DT = ModbusClientMixin.DATATYPE
ORDER = st.sampled_from(["big", "little"])
register = st.integers(0, 0xFFFF)
finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def tags(draw):
    type_ = draw(st.sampled_from([*NUMERIC, "string", "bit"]))
    spec = {"name": "t", "address": 0, "type": type_, "word_order": draw(ORDER), "byte_order": draw(ORDER)}
    if type_ == "string":
        spec |= {"length": draw(st.integers(1, 20)), "encoding": draw(st.sampled_from(["ascii", "latin-1", "utf-8"]))}
    elif type_ == "bit":
        spec["bit"] = draw(st.integers(0, 15))
    else:
        spec |= {"scale": draw(st.one_of(st.just(1.0), finite)), "offset": draw(st.one_of(st.just(0.0), finite))}
    return Tag.model_validate(spec)


@fuzz
@given(tags(), st.data())
def test_fuzz_decode_any_registers_gives_a_finite_value_or_a_reason(tag, data):
    words = data.draw(st.one_of(st.lists(register, min_size=tag.width, max_size=tag.width), st.lists(register, max_size=10)))
    value, reason = decode(tag, words)
    if len(words) != tag.width:
        assert value is None and "registers" in reason
    elif reason is not None:
        assert value is None and reason
    elif tag.type == "bit":
        assert isinstance(value, bool)
    elif tag.type == "string":
        assert isinstance(value, str) and "\0" not in value and len(value) <= tag.length
    else:
        assert isinstance(value, int | float) and math.isfinite(value)


def _tag(type_, word_order, byte_order="big", **kw):
    return Tag(name="t", address=0, type=type_, word_order=word_order, byte_order=byte_order, **kw)


def _value(type_):
    if type_.startswith("float"):
        return st.floats(width=32 if type_ == "float32" else 64, allow_nan=False, allow_infinity=False)
    bits = 16 * WIDTH[type_]
    return st.integers(0, 2**bits - 1) if type_.startswith("u") else st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@fuzz
@given(st.sampled_from(NUMERIC).flatmap(lambda t: st.tuples(st.just(t), _value(t))), ORDER, ORDER)
def test_fuzz_round_trip_against_pymodbus_encoder(typed, word_order, byte_order):
    type_, value = typed
    words = ModbusClientMixin.convert_to_registers(value, DT[type_.upper()], word_order)
    if byte_order == "little":  # pymodbus has word order only; a byte swap is the same in every register
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    got, reason = decode(_tag(type_, word_order, byte_order), words)
    assert reason is None
    if type_ == "float32":
        assert struct.pack(">f", got) == struct.pack(">f", value)
    else:
        assert got == value and type(got) is type(value)


@fuzz
@given(st.sampled_from(NUMERIC), ORDER, st.data())
def test_fuzz_decode_agrees_with_pymodbus_decoder(type_, word_order, data):
    words = data.draw(st.lists(register, min_size=WIDTH[type_], max_size=WIDTH[type_]))
    reference = ModbusClientMixin.convert_from_registers(words, DT[type_.upper()], word_order)
    got, reason = decode(_tag(type_, word_order), words)
    if isinstance(reference, float) and not math.isfinite(reference):
        assert got is None and reason
    elif type_ == "float32":
        assert reason is None and struct.pack(">f", got) == struct.pack(">f", reference)
    else:
        assert reason is None and got == reference


@fuzz
@given(st.text(st.characters(min_codepoint=1, max_codepoint=126), min_size=1, max_size=40), ORDER)
def test_fuzz_string_round_trip_keeps_blanks(text, word_order):
    words = ModbusClientMixin.convert_to_registers(text, DT.STRING)
    got, reason = decode(_tag("string", "big", length=len(text)), words)
    assert reason is None and got == text


def test_string_ends_at_the_first_nul_and_keeps_trailing_blanks():
    tag = _tag("string", "big", length=8)
    assert decode(tag, [0x4142, 0x2020, 0, 0]) == ("AB  ", None)
    assert decode(tag, [0x4100, 0x4243, 0, 0]) == ("A", None)


def test_short_or_long_register_lists_are_bad_not_errors():
    assert decode(_tag("float64", "big"), [1, 2, 3]) == (None, "answer holds 3 of the tag's 4 registers")
    assert decode(_tag("bit", "big", bit=3), [])[0] is None
    assert decode(_tag("uint16", "big"), [1, 2])[0] is None


def test_a_scaled_value_past_float_range_is_bad():
    got, reason = decode(_tag("float64", "big", scale=1e300), ModbusClientMixin.convert_to_registers(1e300, DT.FLOAT64))
    assert got is None and "out of range" in reason


@st.composite
def placed_tags(draw):
    tag = draw(tags())
    return tag.model_copy(update={"name": f"t{draw(st.integers(0, 10**6))}", "address": draw(st.integers(0, 30))})


@fuzz
@given(st.lists(placed_tags(), min_size=1, max_size=12, unique_by=lambda t: t.name), st.data())
def test_fuzz_block_decode_is_decode_tag_by_tag(group, data):
    from drivers.modbus.codec import plan

    for block in plan(group, max_gap=40):
        regs = data.draw(st.one_of(st.lists(register, min_size=block.count, max_size=block.count), st.lists(register, max_size=block.count + 3)))
        values, faults = block.decode(regs)
        bad = {i: (reason, words) for i, reason, words in faults}
        assert len(values) == len(block.tags) and len(bad) == len(faults)
        for i, tag in enumerate(block.tags):
            off = tag.address - block.start
            want, reason = decode(tag, regs[off : off + tag.width])
            assert (repr(values[i]), type(values[i])) == (repr(want), type(want))
            assert bad.get(i) == (None if reason is None else (reason, regs[off : off + tag.width]))


@fuzz
@given(st.lists(st.tuples(st.sampled_from(NUMERIC), st.integers(0, 3), st.one_of(st.just(1.0), finite)), min_size=1, max_size=15), st.data())  # within 125 registers
def test_fuzz_a_block_of_big_endian_numbers_is_unpacked_in_one_call_and_agrees(specs, data):
    from drivers.modbus.codec import plan

    tags, at = [], 0
    for i, (type_, gap, scale) in enumerate(specs):
        at += gap
        tags.append(Tag(name=f"t{i}", address=at, type=type_, scale=scale))
        at += WIDTH[type_]
    (block,) = plan(tags, max_gap=3)
    assert block.whole is not None
    regs = data.draw(st.lists(register, min_size=block.count, max_size=block.count))
    values, faults = block.decode(regs)
    bad = {i: reason for i, reason, _ in faults}
    for i, tag in enumerate(block.tags):
        off = tag.address - block.start
        want, reason = decode(tag, regs[off : off + tag.width])
        assert (repr(values[i]), bad.get(i)) == (repr(want), reason)
