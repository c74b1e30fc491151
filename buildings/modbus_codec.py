"""The meaning of a point's Modbus declaration: engineering value <-> registers (or bits).

One place for it, so the simulators (which encode) and the collectors (which decode) can never disagree.

Conventions (the common meter manual wording in brackets):

- **engineering = raw * scale + offset**; encoding computes ``raw = (value - offset) / scale``.
- **byte_order** is the order of the two bytes *inside each register*: ``big`` = high byte first, as the
  Modbus spec sends it; ``little`` = swapped.
- **word_order** is the order of the registers of a 32/64-bit value: ``big`` = most significant register at
  the lowest address; ``little`` = least significant first.
  Together: big/big = ABCD, big-bytes/little-words = CDAB ("word swap"), little/big = BADC ("byte swap"),
  little/little = DCBA.
- **string**: two characters per register (UTF-8, ASCII in practice), first character in the high byte unless
  byte_order is little; padded with NUL to ``length`` registers and truncated (at a character boundary) if
  longer. word_order does not apply to strings. Decoding strips trailing NULs and spaces (devices pad with
  either) and replaces undecodable bytes with U+FFFD.
- **bit in a register** (``type: bit`` with ``bit: 0-15`` on a holding/input register): bit 0 is the least
  significant bit of the register *after* byte_order is applied. Several points may share one register, so
  the encoder returns only this point's bit; use ``write_into`` to merge it into a register image.
- **coil / discrete input**: one bit; value truthy -> 1.
- Decoded numbers are Python floats (bits as 0.0 / 1.0, like ``Reading`` wants); strings are str.

Clamping and NaN when encoding (``strict=False``, what a simulated or real device does):

- Integer types saturate at their range (an int16 never wraps round); raw values are rounded half to even.
- NaN / None for an integer type encodes the SunSpec "not implemented" pattern (int16 0x8000, uint16 0xFFFF,
  int32 0x80000000, uint32 0xFFFFFFFF) so that a collector's range check flags it; float types encode NaN.
  Decoding never invents NaN from an integer: the raw pattern decodes arithmetically.
- float32 overflow encodes +/-inf. ``strict=True`` (writes to a plant) raises CodecError for any value that
  would be clamped, NaN for an integer type, or a string that does not fit.

The arithmetic is struct-based with precompiled formats per declaration (``codec_for`` is cached), because
the collectors decode tens of thousands of points per second; the tests check it against pymodbus'
``convert_to_registers`` / ``convert_from_registers`` for every type and word order.
"""

from __future__ import annotations

import math
import struct
from collections.abc import MutableSequence, Sequence
from dataclasses import dataclass
from functools import lru_cache

from buildings.site import ModbusSource, ModbusType

Value = float | int | str | bool | None


class CodecError(ValueError):
    """A value cannot be encoded as the point declares (strict mode), or registers are the wrong size."""


# struct format of the value, and (min, max) raw for integers
_VALUE_FMT = {
    ModbusType.INT16: ("h", -(2**15), 2**15 - 1),
    ModbusType.UINT16: ("H", 0, 2**16 - 1),
    ModbusType.INT32: ("i", -(2**31), 2**31 - 1),
    ModbusType.UINT32: ("I", 0, 2**32 - 1),
    ModbusType.FLOAT32: ("f", None, None),
    ModbusType.FLOAT64: ("d", None, None),
}
# "not implemented" raw patterns (SunSpec) for NaN / None in integer types
_NOT_AVAILABLE = {ModbusType.INT16: -(2**15), ModbusType.UINT16: 2**16 - 1,
                  ModbusType.INT32: -(2**31), ModbusType.UINT32: 2**32 - 1}
_F32_MAX = 3.4028234663852886e38


@dataclass(frozen=True, slots=True)
class PointCodec:
    """A compiled declaration: everything needed to encode / decode one point without re-reading the model."""

    kind: str  # "number", "string", "regbit", "bit"
    count: int
    scale: float
    offset: float
    value_struct: struct.Struct | None
    regs_struct: struct.Struct | None  # registers <-> bytes, with byte order
    swap_words: bool
    raw_min: int | None
    raw_max: int | None
    not_available: int | None
    is_float: bool
    mask: int  # regbit: the bit's mask in the register
    byte_little: bool

    # --- decode ----------------------------------------------------------------------------------------

    def decode(self, registers: Sequence[int] | Sequence[bool]) -> float | str:
        """Engineering value from this point's own registers (or its one bit)."""
        if len(registers) != self.count:
            raise CodecError(f"expected {self.count} register(s), got {len(registers)}")
        kind = self.kind
        if kind == "number":
            regs = registers[::-1] if self.swap_words else registers
            raw = self.value_struct.unpack(self.regs_struct.pack(*regs))[0]  # type: ignore[union-attr]
            return raw * self.scale + self.offset
        if kind == "bit":
            return 1.0 if registers[0] else 0.0
        if kind == "regbit":
            reg = registers[0]
            if self.byte_little:
                reg = ((reg & 0xFF) << 8) | (reg >> 8)
            return 1.0 if reg & self.mask else 0.0
        data = self.regs_struct.pack(*registers)  # type: ignore[union-attr]
        return data.decode("utf-8", errors="replace").rstrip("\x00 ")

    def decode_at(self, block: Sequence[int] | Sequence[bool], index: int) -> float | str:
        """Decode from a coalesced block read, where this point starts at ``block[index]``."""
        return self.decode(block[index:index + self.count])

    # --- encode ----------------------------------------------------------------------------------------

    def encode(self, value: Value, strict: bool = False) -> list[int]:
        """Registers for a number or string; [0/1] for a coil or discrete input; [bit] for a bit in a register."""
        kind = self.kind
        if kind == "number":
            return self._encode_number(value, strict)
        if kind in ("bit", "regbit"):
            on = self._truthy(value, strict)
            if kind == "bit":
                return [1 if on else 0]
            reg = self.mask if on else 0
            if self.byte_little:
                reg = ((reg & 0xFF) << 8) | (reg >> 8)
            return [reg]
        return self._encode_string(value, strict)

    def write_into(self, image: MutableSequence[int], index: int, value: Value, strict: bool = False) -> None:
        """Encode into a register (or bit) image at ``index``, merging a register bit with its neighbours."""
        regs = self.encode(value, strict)
        if self.kind == "regbit":
            image[index] = (image[index] & ~self._wire_mask() & 0xFFFF) | regs[0]
            return
        image[index:index + len(regs)] = regs

    def _wire_mask(self) -> int:
        m = self.mask
        return ((m & 0xFF) << 8) | (m >> 8) if self.byte_little else m

    @staticmethod
    def _truthy(value: Value, strict: bool) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if strict:
                raise CodecError("a bit cannot be NaN or empty")
            return False
        if isinstance(value, str):
            v = value.strip().lower()
            if v in ("1", "true", "on", "yes"):
                return True
            if v in ("0", "false", "off", "no", ""):
                return False
            raise CodecError(f"{value!r} is not a bit value (use 0/1, true/false, on/off)")
        return bool(value)

    def _encode_number(self, value: Value, strict: bool) -> list[int]:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise CodecError(f"{value!r} is not a number") from None
        if value is None:
            value = math.nan
        raw: float | int = (float(value) - self.offset) / self.scale
        if self.is_float:
            if self.count == 2 and not math.isnan(raw) and abs(raw) > _F32_MAX:
                if strict:
                    raise CodecError(f"{value} does not fit a float32")
                raw = math.copysign(math.inf, raw)
        else:
            if math.isnan(raw):
                if strict:
                    raise CodecError("NaN cannot be written to an integer register")
                raw = self.not_available  # type: ignore[assignment]
            else:
                lo, hi = self.raw_min, self.raw_max
                if math.isinf(raw):
                    r = lo if raw < 0 else hi
                else:
                    r = round(raw)
                if r < lo or r > hi:  # type: ignore[operator]
                    if strict:
                        raise CodecError(f"{value} is raw {raw:g}, outside {lo}..{hi} of this register type")
                    r = max(lo, min(hi, r))  # type: ignore[type-var]
                raw = r
        regs = list(self.regs_struct.unpack(self.value_struct.pack(raw)))  # type: ignore[union-attr]
        if self.swap_words:
            regs.reverse()
        return regs

    def _encode_string(self, value: Value, strict: bool) -> list[int]:
        text = "" if value is None else str(value)
        data = text.encode("utf-8")
        room = self.count * 2
        if len(data) > room:
            if strict:
                raise CodecError(f"{text!r} needs {len(data)} bytes; the point holds {room}")
            data = data[:room]
            while data:  # do not cut a multi-byte character in half
                try:
                    data.decode("utf-8")
                    break
                except UnicodeDecodeError:
                    data = data[:-1]
        data = data.ljust(room, b"\x00")
        return list(self.regs_struct.unpack(data))  # type: ignore[union-attr]


@lru_cache(maxsize=65536)
def codec_for(src: ModbusSource) -> PointCodec:
    """The compiled codec of a declaration (cached: ModbusSource is frozen and hashable)."""
    reg_order = "<" if src.byte_order == "little" else ">"
    count = src.count
    common = dict(count=count, scale=src.scale, offset=src.offset, byte_little=src.byte_order == "little")
    if src.is_bit_table:
        return PointCodec(kind="bit", value_struct=None, regs_struct=None, swap_words=False, raw_min=None,
                          raw_max=None, not_available=None, is_float=False, mask=1, **common)
    if src.type == ModbusType.BIT:
        return PointCodec(kind="regbit", value_struct=None, regs_struct=None, swap_words=False, raw_min=None,
                          raw_max=None, not_available=None, is_float=False, mask=1 << (src.bit or 0), **common)
    if src.type == ModbusType.STRING:
        return PointCodec(kind="string", value_struct=None, regs_struct=struct.Struct(f"{reg_order}{count}H"),
                          swap_words=False, raw_min=None, raw_max=None, not_available=None, is_float=False, mask=0,
                          **common)
    fmt, lo, hi = _VALUE_FMT[src.type]
    return PointCodec(kind="number", value_struct=struct.Struct(f">{fmt}"),
                      regs_struct=struct.Struct(f"{reg_order}{count}H"), swap_words=src.word_order == "little",
                      raw_min=lo, raw_max=hi, not_available=_NOT_AVAILABLE.get(src.type),
                      is_float=src.type in (ModbusType.FLOAT32, ModbusType.FLOAT64), mask=0, **common)


def encode(src: ModbusSource, value: Value, strict: bool = False) -> list[int]:
    """Registers (or [bit]) for an engineering value, as the point declares. See the module doc for rules."""
    return codec_for(src).encode(value, strict)


def decode(src: ModbusSource, registers: Sequence[int] | Sequence[bool]) -> float | str:
    """Engineering value from the point's own registers (len == src.count), as the point declares."""
    return codec_for(src).decode(registers)


def write_into(src: ModbusSource, image: MutableSequence[int], index: int, value: Value,
               strict: bool = False) -> None:
    """Encode a value into a register image at ``index``; a bit in a register keeps its neighbours' bits."""
    codec_for(src).write_into(image, index, value, strict)


class BlockEncoder:
    """Encodes many points into one register image at once (a simulator refreshing a whole table).

    Contiguous runs of numeric points with the same type, byte and word order are packed with one struct call;
    the result is exactly what ``write_into`` gives point by point (a run falls back to that whenever a value
    needs the clamping / NaN / string rules). ``points`` are (index in the image, declaration) pairs.
    """

    def __init__(self, points: Sequence[tuple[int, ModbusSource]]) -> None:
        self.order = sorted(range(len(points)), key=lambda i: points[i][0])
        self.runs: list[tuple[int, list[int], PointCodec, struct.Struct | None, struct.Struct | None]] = []
        cur: list[int] = []
        for i in self.order:
            index, src = points[i]
            c = codec_for(src)
            if cur:
                pi, psrc = points[cur[-1]]
                pc = codec_for(psrc)
                same = (c.kind == "number" and pc.kind == "number" and psrc.type == src.type
                        and psrc.byte_order == src.byte_order and psrc.word_order == src.word_order
                        and psrc.scale == src.scale and psrc.offset == src.offset and pi + pc.count == index)
                if same:
                    cur.append(i)
                    continue
                self._close(points, cur)
            cur = [i]
        if cur:
            self._close(points, cur)

    def _close(self, points: Sequence[tuple[int, ModbusSource]], run: list[int]) -> None:
        c = codec_for(points[run[0]][1])
        start = points[run[0]][0]
        if c.kind != "number" or len(run) == 1:
            for i in run:
                self.runs.append((points[i][0], [i], codec_for(points[i][1]), None, None))
            return
        fmt = c.value_struct.format[-1]  # type: ignore[union-attr]
        vals = struct.Struct(f">{len(run)}{fmt}")
        regs = struct.Struct(f"{'<' if c.byte_little else '>'}{len(run) * c.count}H")
        self.runs.append((start, run, c, vals, regs))

    def write(self, image: MutableSequence[int], values: Sequence[Value]) -> None:
        """Encode ``values`` (aligned with the points given at construction) into the image."""
        for start, run, c, vals, regs in self.runs:
            if vals is None:
                for i in run:
                    try:
                        c.write_into(image, start, values[i])
                    except CodecError:  # e.g. a string where a number is declared: serve "not available"
                        c.write_into(image, start, None)
                continue
            try:
                if c.scale == 1.0 and c.offset == 0.0:
                    raw = [values[i] for i in run]
                else:
                    raw = [(values[i] - c.offset) / c.scale for i in run]  # type: ignore[operator]
                if not c.is_float:
                    raw = [round(r) for r in raw]  # type: ignore[arg-type]
                out = regs.unpack(vals.pack(*raw))  # type: ignore[union-attr]
            except (struct.error, TypeError, ValueError, OverflowError):
                self._slow(image, start, run, c, values)  # NaN, None, out of range, text: per-point rules
                continue
            if c.swap_words:
                out = _swap_words(out, c.count)
            image[start:start + len(out)] = out

    @staticmethod
    def _slow(image: MutableSequence[int], start: int, run: list[int], c: PointCodec,
              values: Sequence[Value]) -> None:
        for k, i in enumerate(run):
            try:
                c.write_into(image, start + k * c.count, values[i])
            except CodecError:
                c.write_into(image, start + k * c.count, None)


def _swap_words(regs: Sequence[int], count: int) -> list[int]:
    """Reverse the registers of every count-register value (word order little), with slicing only."""
    out = list(regs)
    for j in range(count):
        out[j::count] = regs[count - 1 - j::count]
    return out
