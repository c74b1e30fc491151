"""Our Modbus collector against Modbus TCP servers the project did not write: pyModbusTCP's server and a
libmodbus server. Holding and input registers of every data type, byte order and word order a site file can
declare (plus scale/offset, bits in registers, coils and discrete inputs), read through the real collector and
checked against values encoded here with ``struct``."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildings.site import Site
from collectors.collector import Collector
from collectors.pipeline import MemorySink
from collectors.poller import Health
from telemetry.reading import Quality, Reading
from tests.collectors.conftest import building_doc, point, write_site
from tests.interop.conftest import OutsideServer, registers_for

WIDE = ["int32", "uint32", "float32", "float64"]
ORDERS = [(b, w) for b in ("big", "little") for w in ("big", "little")]
RAW = {"int16": -1234, "uint16": 54321, "int32": -123456789, "uint32": 3000000000, "float32": -3.25,
       "float64": 123456.789012}


def cases() -> list[tuple[str, str, str, dict[str, Any], float | str]]:
    """(type, byte_order, word_order, extra source keys, engineering value): every combination a site file
    supports (word order only matters for 32/64-bit values), plus scaled ones and strings."""
    out: list[tuple[str, str, str, dict[str, Any], float | str]] = []
    for t in ("int16", "uint16"):
        for b in ("big", "little"):
            out.append((t, b, "big", {}, float(RAW[t])))
    for t in WIDE:
        for b, w in ORDERS:
            out.append((t, b, w, {}, float(RAW[t])))
    out.append(("int16", "big", "big", {"scale": 0.1, "offset": -40}, 23.7))
    out.append(("uint32", "big", "little", {"scale": 0.01}, 12345.67))
    out.append(("string", "big", "big", {"length": 5}, "AB-12x"))
    out.append(("string", "little", "big", {"length": 3}, "kWh"))
    return out


def raw_of(type_: str, extra: dict[str, Any], value: float | str) -> float | int | str:
    if isinstance(value, str):
        return value
    raw = (value - extra.get("offset", 0.0)) / extra.get("scale", 1.0)
    return raw if type_.startswith("float") else round(raw)


def build(function: str) -> tuple[list[dict[str, Any]], dict[str, dict[int, int]], dict[str, float | str]]:
    """Site points, the server's register image, and the expected value per point key."""
    table = "h" if function == "holding" else "i"
    pts: list[dict[str, Any]] = []
    image: dict[str, dict[int, int]] = {table: {}, "c": {}, "d": {}}
    expected: dict[str, float | str] = {}
    address = 10  # not at 0: an off-by-one in addressing would read the neighbour
    for n, (t, b, w, extra, value) in enumerate(cases()):
        words = registers_for(t, b, w, raw_of(t, extra, value), extra.get("length"))
        for k, word in enumerate(words):
            image[table][address + k] = word
        src = {"device": "m1", "function": function, "address": address, "type": t, "byte_order": b,
               "word_order": w, **extra}
        pts.append(point(f"p{n}", src, "modbus", brick="Point", unit=""))
        expected[f"b1/p{n}"] = value.rstrip() if isinstance(value, str) else value
        address += len(words) + (n % 3)  # some points back to back, some with small gaps the planner bridges
    # bits inside one register, both byte orders, and the bit tables
    image[table][address] = 0b0000_0000_0010_0000  # bit 5 set (big); read with little, that is bit 13
    pts.append(point("rb5", {"device": "m1", "function": function, "address": address, "type": "bit", "bit": 5},
                     "modbus", brick="Point", unit=""))
    pts.append(point("rb13", {"device": "m1", "function": function, "address": address, "type": "bit", "bit": 13,
                              "byte_order": "little"}, "modbus", brick="Point", unit=""))
    pts.append(point("rb4", {"device": "m1", "function": function, "address": address, "type": "bit", "bit": 4},
                     "modbus", brick="Point", unit=""))
    expected.update({"b1/rb5": 1.0, "b1/rb13": 1.0, "b1/rb4": 0.0})
    image["c"].update({3: 1, 4: 0, 5: 1})
    image["d"].update({7: 1, 8: 0})
    for a in (3, 4, 5):
        pts.append(point(f"c{a}", {"device": "m1", "function": "coil", "address": a, "type": "bit"}, "modbus",
                         brick="Point", unit=""))
        expected[f"b1/c{a}"] = float(image["c"][a])
    for a in (7, 8):
        pts.append(point(f"d{a}", {"device": "m1", "function": "discrete_input", "address": a, "type": "bit"},
                         "modbus", brick="Point", unit=""))
        expected[f"b1/d{a}"] = float(image["d"][a])
    return pts, image, expected


def collect_until(site: Site, done: Callable[[dict[str, Reading]], bool], timeout_s: float = 20.0,
                  **kw: Any) -> tuple[Collector, MemorySink]:
    """Run the real collector until ``done(last reading per point)`` holds (or the timeout), then stop it."""
    async def main() -> tuple[Collector, MemorySink]:
        sink = MemorySink()
        collector = Collector(site, [sink], **kw)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if done({r.point: r for r in sink.readings}):
                    break
        finally:
            stop.set()
            await task
        return collector, sink

    return asyncio.run(main())


def device_site(tmp_path: Path, port: int, pts: list[dict[str, Any]], **device: Any) -> Site:
    dev = {"id": "m1", "protocol": "modbus", "port": port, "unit_id": 1, "poll_interval_s": 0.2,
           "timeout_s": 1.0, **device}
    return write_site(tmp_path / "s", [building_doc("b1", [dev], pts)])


def check_values(last: dict[str, Reading], expected: dict[str, float | str]) -> None:
    assert set(expected) <= set(last), sorted(set(expected) - set(last))
    for key, want in expected.items():
        r = last[key]
        assert r.quality is Quality.GOOD, (key, r)
        if isinstance(want, str):
            assert r.value == want, (key, r.value, want)
        else:
            assert isinstance(r.value, float)
            assert math.isclose(r.value, want, rel_tol=1e-7, abs_tol=1e-6), (key, r.value, want)


def all_good(expected: dict[str, float | str]) -> Callable[[dict[str, Reading]], bool]:
    return lambda last: all(k in last and last[k].quality is Quality.GOOD for k in expected)


def _read_everything(tmp_path: Path, outside_modbus: Callable[..., OutsideServer], function: str) -> None:
    pts, image, expected = build(function)
    server = outside_modbus(image)
    site = device_site(tmp_path, server.port, pts)
    collector, sink = collect_until(site, all_good(expected))
    check_values({r.point: r for r in sink.readings}, expected)
    st = collector.pollers["b1/m1"].status
    assert st.health is Health.OK and st.errors == 0, (server.name, st.last_error)
    if server.requests:  # libmodbus logs what it was sent: coalesced reads, not one per point
        per_poll = {line for line in server.requests}
        assert len(per_poll) <= 4, per_poll


def test_holding_registers_every_type_and_order(tmp_path: Path,
                                                outside_modbus: Callable[..., OutsideServer]) -> None:
    _read_everything(tmp_path, outside_modbus, "holding")


def test_input_registers_every_type_and_order(tmp_path: Path, outside_modbus: Callable[..., OutsideServer]) -> None:
    _read_everything(tmp_path, outside_modbus, "input")
