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
    """One Reading per planned point of a block read; a short block marks the missing points BAD.

    Plain big-endian numbers (the Modbus default) come out of the block's bytes through the read's one
    precompiled struct (``ModbusRead.block_struct``); every other point goes through its codec.
    """
    out: list[Reading] = []
    append = out.append
    good = Quality.GOOD
    isfinite = math.isfinite
    fs = read.block_struct
    slow = read.slow
    if fs is not None:
        try:
            raw = struct.pack(f">{len(block)}H", *block)
            values = fs.unpack_from(raw) if len(raw) >= fs.size else None
        except struct.error:
            values = None
        if values is None:  # a short answer: decode what is there point by point
            slow = read.points
        else:
            for (key, scale, offset, rng), v in zip(read.fast, values, strict=True):
                v = v * scale + offset
                if isfinite(v) and (rng is None or rng[0] <= v <= rng[1]):
                    append(Reading(key, ts, v, good))
                else:
                    append(Reading(key, ts, v, judge(v, rng)))
    for p in slow:
        codec = p.codec or codec_for(p.source)
        off = p.offset
        try:
            value: float | str | None = codec.decode(block[off:off + codec.count])
        except (CodecError, IndexError, ValueError):  # short or truncated answer for this point
            append(Reading(p.key, ts, None, Quality.BAD))
            continue
        append(Reading(p.key, ts, value, judge(value, p.range)))
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
