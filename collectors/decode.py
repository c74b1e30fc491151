"""Decoding glue: raw protocol answers -> Readings with an honest quality.

The arithmetic of a Modbus declaration lives in ``buildings.modbus_codec`` (shared with the simulators); this
module only slices a coalesced block per planned point and judges the value: NaN / inf -> BAD, outside the
point's ``range`` -> OUT_OF_RANGE. Nothing is ever dropped: a value that cannot be trusted is kept, flagged.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from buildings.modbus_codec import CodecError, codec_for
from collectors.planner import ModbusRead
from telemetry.reading import Quality, Reading


def judge(value: float | str | None, rng: tuple[float, float] | None) -> Quality:
    """Quality of a decoded value: BAD for missing/NaN/inf, OUT_OF_RANGE outside [min, max], else GOOD."""
    if value is None:
        return Quality.BAD
    if isinstance(value, str):
        return Quality.GOOD
    if math.isnan(value) or math.isinf(value):
        return Quality.BAD
    if rng is not None and not (rng[0] <= value <= rng[1]):
        return Quality.OUT_OF_RANGE
    return Quality.GOOD


def decode_modbus(read: ModbusRead, block: Sequence[int] | Sequence[bool], ts: float) -> list[Reading]:
    """One Reading per planned point of a block read; a short block marks the missing points BAD."""
    out: list[Reading] = []
    append = out.append
    good = Quality.GOOD
    isfinite = math.isfinite
    # Fast path: numbers in the wire's own order (big-endian bytes and words, the Modbus default) are unpacked
    # straight from the block's bytes with the codec's own struct, instead of re-packing each point's registers.
    raw = b""
    if read.count > 1 and not read.points[0].source.is_bit_table:
        try:
            raw = struct.pack(f">{len(block)}H", *block)
        except struct.error:
            raw = b""
    nbytes = len(raw)
    for p in read.points:
        codec = p.codec or codec_for(p.source)
        off = p.offset
        try:
            if raw and codec.kind == "number" and not codec.swap_words and not codec.byte_little \
                    and (off + codec.count) * 2 <= nbytes:
                value: float | str | None = (codec.value_struct.unpack_from(raw, off * 2)[0]  # type: ignore[union-attr]
                                             * codec.scale + codec.offset)
            else:
                value = codec.decode(block[off:off + codec.count])
        except (CodecError, IndexError, ValueError):  # short or truncated answer for this point
            append(Reading(p.key, ts, None, Quality.BAD))
            continue
        rng = p.range
        if type(value) is float and isfinite(value) and (rng is None or rng[0] <= value <= rng[1]):
            append(Reading(p.key, ts, value, good))  # the common case, without the general judge()
        else:
            append(Reading(p.key, ts, value, judge(value, rng)))
    return out


def failed(keys: Sequence[str], ts: float, quality: Quality = Quality.COMM_FAILURE) -> list[Reading]:
    """Readings without a value for points a failed request should have delivered."""
    return [Reading(k, ts, None, quality) for k in keys]


def bacnet_value(value: object) -> float | str | None:
    """A BACnet property value as a Reading value: numbers and enumerations as float, text as str."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    as_int = getattr(value, "value", None)  # bacpypes3 Enumerated (binary PV active/inactive) carries .value
    if isinstance(as_int, int | float) and not isinstance(as_int, bool):
        return float(as_int)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
