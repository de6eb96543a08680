

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
