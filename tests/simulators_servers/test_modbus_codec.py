"""Round trips of buildings/modbus_codec for every type x byte order x word order, checked against pymodbus."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from buildings.modbus_codec import CodecError, codec_for, decode, encode, write_into
from buildings.site import ModbusSource

ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]
DT = ModbusTcpClient.DATATYPE
INT_RANGES = {"int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1),
              "uint32": (0, 2**32 - 1)}


def src(type_: str, bo: str = "big", wo: str = "big", **kw: object) -> ModbusSource:
    return ModbusSource(device="m", address=10, type=type_, byte_order=bo, word_order=wo, **kw)


def swap_bytes(regs: list[int]) -> list[int]:
    return [((r & 0xFF) << 8) | (r >> 8) for r in regs]


@pytest.mark.parametrize("bo,wo", ORDERS)
@pytest.mark.parametrize("type_", list(INT_RANGES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_integers_round_trip_and_match_pymodbus(type_: str, bo: str, wo: str, data: st.DataObject) -> None:
    lo, hi = INT_RANGES[type_]
    raw = data.draw(st.integers(lo, hi))
    s = src(type_, bo, wo)
    regs = encode(s, raw)
    assert len(regs) == s.count and all(0 <= r <= 0xFFFF for r in regs)
    assert decode(s, regs) == raw
    # independent check: pymodbus' converter does word order; byte order is a swap inside each register
    ref = ModbusTcpClient.convert_to_registers(raw, getattr(DT, type_.upper()), word_order=wo)
    assert regs == (swap_bytes(ref) if bo == "little" else ref)


@pytest.mark.parametrize("bo,wo", ORDERS)
@pytest.mark.parametrize("type_", ["float32", "float64"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_floats_round_trip_and_match_pymodbus(type_: str, bo: str, wo: str, data: st.DataObject) -> None:
    width = 32 if type_ == "float32" else 64
    raw = data.draw(st.floats(width=width, allow_nan=False))
    s = src(type_, bo, wo)
    regs = encode(s, raw)
    assert decode(s, regs) == raw
    ref = ModbusTcpClient.convert_to_registers(raw, getattr(DT, type_.upper()), word_order=wo)
    assert regs == (swap_bytes(ref) if bo == "little" else ref)
    back = ModbusTcpClient.convert_from_registers(swap_bytes(regs) if bo == "little" else regs,
                                                  getattr(DT, type_.upper()), word_order=wo)
    assert back == raw


def test_known_byte_layouts() -> None:
    """ABCD / CDAB / BADC / DCBA for float32 1.0 = 0x3F800000, as meter manuals draw it."""
    assert encode(src("float32", "big", "big"), 1.0) == [0x3F80, 0x0000]
    assert encode(src("float32", "big", "little"), 1.0) == [0x0000, 0x3F80]
    assert encode(src("float32", "little", "big"), 1.0) == [0x803F, 0x0000]
    assert encode(src("float32", "little", "little"), 1.0) == [0x0000, 0x803F]
    assert encode(src("uint32", "big", "little"), 0x12345678) == [0x5678, 0x1234]


@pytest.mark.parametrize("bo,wo", ORDERS)
@settings(max_examples=40, deadline=None)
@given(text=st.text(st.characters(min_codepoint=33, max_codepoint=0x7E), max_size=16))
def test_strings_round_trip(bo: str, wo: str, text: str) -> None:
    s = src("string", bo, wo, length=8)
    regs = encode(s, text)
    assert len(regs) == 8
    assert decode(s, regs) == text
    if bo == "big":
        assert regs == ModbusTcpClient.convert_to_registers(text, DT.STRING) + [0] * (8 - (len(text) + 1) // 2)


def test_string_truncates_at_character_boundary_and_strict_refuses() -> None:
    s = src("string", length=2)
    assert decode(s, encode(s, "ABCDEF")) == "ABCD"
    assert decode(s, encode(s, "A温度")) == "A温"  # 1 + 3 bytes fill 2 registers exactly
    assert decode(s, encode(s, "AB温")) == "AB"  # 温 would be cut in half: dropped whole
    with pytest.raises(CodecError):
        encode(s, "ABCDE", strict=True)
    assert decode(s, [0x4142, 0x2020]) == "AB"  # space padding stripped


@pytest.mark.parametrize("bo", ["big", "little"])
@pytest.mark.parametrize("function", ["holding", "input"])
def test_bits_in_a_register_share_it(bo: str, function: str) -> None:
    points = [ModbusSource(device="m", address=5, function=function, type="bit", bit=b, byte_order=bo)
              for b in range(16)]
    image = [0] * 8
    want = [b % 3 == 0 for b in range(16)]
    for p, on in zip(points, want, strict=True):
        write_into(p, image, 5, on)
    for p, on in zip(points, want, strict=True):
        assert decode(p, image[5:6]) == (1.0 if on else 0.0)
    expected = sum(1 << b for b in range(16) if want[b])
    assert image[5] == (swap_bytes([expected])[0] if bo == "little" else expected)
    write_into(points[0], image, 5, False)
    assert decode(points[0], image[5:6]) == 0.0 and decode(points[3], image[5:6]) == 1.0
    assert image[4] == 0 and image[6] == 0


@pytest.mark.parametrize("function", ["coil", "discrete_input"])
def test_coils_and_discrete_inputs(function: str) -> None:
    s = ModbusSource(device="m", address=0, function=function, type="bit")
    assert encode(s, 1) == [1] and encode(s, 0.0) == [0] and encode(s, "on") == [1]
    assert decode(s, [True]) == 1.0 and decode(s, [False]) == 0.0
    with pytest.raises(CodecError):
        encode(s, "maybe")


@pytest.mark.parametrize("bo,wo", ORDERS)
@settings(max_examples=40, deadline=None)
@given(value=st.floats(-3000, 3000, allow_nan=False), scale=st.sampled_from([0.1, 0.01, 0.5, 2.0]),
       offset=st.sampled_from([0.0, -40.0, 273.15]))
def test_scale_and_offset(bo: str, wo: str, value: float, scale: float, offset: float) -> None:
    s = src("int32", bo, wo, scale=scale, offset=offset)
    got = decode(s, encode(s, value))
    assert abs(got - value) <= scale / 2 + 1e-9 * abs(value)
    f = src("float32", bo, wo, scale=scale, offset=offset)
    assert math.isclose(decode(f, encode(f, value)), value, rel_tol=1e-6, abs_tol=1e-3 * scale)


def test_clamping_and_nan_rules() -> None:
    s16 = src("int16")
    assert encode(s16, 1e9) == [0x7FFF] and encode(s16, -1e9) == [0x8000]
    assert encode(s16, math.inf) == [0x7FFF]
    assert encode(src("uint16"), -5) == [0]
    assert encode(s16, math.nan) == [0x8000] and encode(src("uint16"), None) == [0xFFFF]
    assert encode(src("int32"), None) == [0x8000, 0] and encode(src("uint32"), None) == [0xFFFF, 0xFFFF]
    assert math.isnan(decode(src("float32"), encode(src("float32"), None)))
    assert encode(src("float32"), 1e39) == list(struct.unpack(">2H", struct.pack(">f", math.inf)))
    assert encode(src("int16"), 2.5) == [2] and encode(src("int16"), 3.5) == [4]  # half to even
    for bad in (1e9, math.nan):
        with pytest.raises(CodecError):
            encode(s16, bad, strict=True)
    with pytest.raises(CodecError):
        encode(src("float32"), 1e39, strict=True)
    with pytest.raises(CodecError):
        decode(src("float32"), [1, 2, 3])
    with pytest.raises(CodecError):
        encode(src("int16"), "abc")
    assert encode(src("int16"), "12") == [12]


def test_decode_at_and_codec_cache() -> None:
    s = src("uint32", "big", "little")
    block = [9, 9] + encode(s, 70000) + [9]
    assert codec_for(s).decode_at(block, 2) == 70000
    assert codec_for(s) is codec_for(src("uint32", "big", "little"))


ANY_VALUE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**40), 2**40), st.none(),
                      st.sampled_from(["12", "abc", ""]), st.booleans())


@settings(max_examples=80, deadline=None)
@given(layout=st.lists(st.tuples(st.sampled_from(["int16", "uint16", "int32", "uint32", "float32", "float64",
                                                  "string", "bit"]),
                                 st.sampled_from(ORDERS), st.sampled_from([1.0, 0.1]), st.booleans()),
                       min_size=1, max_size=12),
       data=st.data())
def test_block_encoder_matches_point_by_point(layout: list[tuple[str, tuple[str, str], float, bool]],
                                              data: st.DataObject) -> None:
    """The batched refresh a simulator uses gives exactly the registers write_into gives one by one."""
    from buildings.modbus_codec import BlockEncoder

    points, addr = [], 0
    for t, (bo, wo), scale, gap in layout:
        kw: dict[str, object] = {"length": 3} if t == "string" else {"bit": 4} if t == "bit" else {}
        s = ModbusSource(device="m", address=addr, type=t, byte_order=bo, word_order=wo, scale=scale, **kw)
        points.append((addr, s))
        addr += s.count + (1 if gap else 0)
    values = [data.draw(ANY_VALUE) for _ in points]
    expect = [0] * addr
    for (i, s), v in zip(points, values, strict=True):
        try:
            write_into(s, expect, i, v)
        except CodecError:
            write_into(s, expect, i, None)
    got = [0] * addr
    BlockEncoder(points).write(got, values)
    assert got == expect
