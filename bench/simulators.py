"""Benchmarks of the simulators: protocol servers (requests and points per second served) and backfill.

Run: ``.venv/bin/python bench/simulators.py [--quick] [--only modbus,bacnet]``. One JSON line per result with
bench, metric, value, unit, baseline, ratio; each baseline is measured in the same run.

Modbus: a server process with 100 simulated meters x 200 float32 points (one port, unit ids 1-100, like a
gateway), loaded by plain pymodbus clients in this process. Measured: points/s and requests/s with coalesced
125-register reads (what a planner does) against the baseline of one read per point (naive polling).
BACnet: a server process with one device of 200 analog inputs, loaded by a plain bacpypes3 client:
ReadPropertyMultiple of 50 points per request against the baseline of one ReadProperty per point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from buildings import SAMPLE_SITE  # noqa: E402
from buildings.site import Device, ModbusSource, Point  # noqa: E402
from simulators.values import DeviceMode  # noqa: E402


def emit(bench: str, metric: str, value: float, unit: str, baseline: float | None = None) -> None:
    ratio = round(value / baseline, 2) if baseline else None
    print(json.dumps({"bench": bench, "metric": metric, "value": round(value, 1), "unit": unit,
                      "baseline": None if baseline is None else round(baseline, 1), "ratio": ratio}), flush=True)


class SteadyValues:
    """A ValueSource whose values change every second (so refreshes do real encoding work)."""

    def value(self, point_key: str) -> float:
        return 20.0 + (hash(point_key) % 100) / 10 + (int(time.time()) % 7)

    def device_mode(self, device_key: str) -> DeviceMode:
        return DeviceMode.OK

    def now(self) -> float:
        return time.time()


# --- Modbus -----------------------------------------------------------------------------------------------

def _modbus_units(port: int, n_dev: int, n_pts: int) -> list[tuple[str, Device, list[tuple[str, Any]]]]:
    units = []
    for d in range(1, n_dev + 1):
        dev = Device(id=f"m{d}", protocol="modbus", port=port, unit_id=d)
        pts = [(f"b/m{d}-p{i}", Point(id=f"m{d}-p{i}", name="p", brick="Active_Power_Sensor", unit="kW",
                                      modbus=ModbusSource(device=dev.id, address=2 * i, type="float32")))
               for i in range(n_pts)]
        units.append((f"b/m{d}", dev, pts))
    return units


def _modbus_server(port: int, n_dev: int, n_pts: int, ready: Any) -> None:
    from simulators.servers.modbus import ModbusEndpointServer

    async def main() -> None:
        await ModbusEndpointServer("127.0.0.1", port, _modbus_units(port, n_dev, n_pts), SteadyValues(), 1.0).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def _modbus_load(port: int, n_dev: int, n_pts: int, seconds: float, per_point: bool,
                       clients: int = 4) -> tuple[int, int, float]:
    """(points, requests, elapsed) read by `clients` connections going round the devices."""
    from pymodbus.client import AsyncModbusTcpClient

    regs = 2 * n_pts
    blocks = [(a, min(124, regs - a)) for a in range(0, regs, 124)]  # 124: whole float32s per request

    async def one(k: int) -> tuple[int, int]:
        c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
        await c.connect()
        points = requests = 0
        unit = 1 + k
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if per_point:
                for i in range(0, regs, 2):
                    rr = await c.read_holding_registers(i, count=2, device_id=unit)
                    assert not rr.isError(), rr
                    points += 1
                    requests += 1
                    if time.perf_counter() >= deadline:
                        break
            else:
                for a, n in blocks:
                    rr = await c.read_holding_registers(a, count=n, device_id=unit)
                    assert not rr.isError(), rr
                    points += n // 2
                    requests += 1
            unit = 1 + (unit + clients - 1) % n_dev
        c.close()
        return points, requests

    t0 = time.perf_counter()
    res = await asyncio.gather(*(one(k) for k in range(clients)))
    return sum(r[0] for r in res), sum(r[1] for r in res), time.perf_counter() - t0


def bench_modbus(quick: bool) -> None:
    from retrofit.devservers import free_port, wait_port

    n_dev, n_pts, secs = 100, 200, (3.0 if quick else 10.0)
    port = free_port()
    ready = mp.Event()
    proc = mp.Process(target=_modbus_server, args=(port, n_dev, n_pts, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(120):
            raise RuntimeError("Modbus simulator did not start")
        wait_port(port)
        base_pts, base_req, base_t = asyncio.run(_modbus_load(port, n_dev, n_pts, secs / 2, per_point=True))
        pts, req, t = asyncio.run(_modbus_load(port, n_dev, n_pts, secs, per_point=False))
    finally:
        proc.terminate()
        proc.join(10)
    emit("simulators.modbus", "points_per_s_served", pts / t, "points/s", base_pts / base_t)
    emit("simulators.modbus", "requests_per_s_served", req / t, "requests/s", base_req / base_t)


# --- BACnet -----------------------------------------------------------------------------------------------

def _bacnet_server(port: int, n_pts: int, ready: Any) -> None:
    from buildings.site import BacnetSource
    from simulators.servers.bacnet import BacnetDeviceServer

    async def main() -> None:
        dev = Device(id="ddc", protocol="bacnet", port=port, device_instance=5000)
        pts = [(f"b/t{i}", Point(id=f"t{i}", name=f"t{i}", brick="Zone_Air_Temperature_Sensor", unit="degC",
                                 bacnet=BacnetSource(device="ddc", object_type="analog-input", instance=i)))
               for i in range(n_pts)]
        await BacnetDeviceServer("b/ddc", dev, pts, SteadyValues(), 1.0).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def _bacnet_load(port: int, n_pts: int, seconds: float, per_point: bool,
                       batch: int = 50) -> tuple[int, int, float]:
    from bacpypes3.app import Application
    from bacpypes3.local.device import DeviceObject
    from bacpypes3.local.networkport import NetworkPortObject
    from bacpypes3.pdu import Address

    from retrofit.devservers import free_udp_port

    app = Application.from_object_list([
        DeviceObject(objectIdentifier=("device", 4000002), objectName="bench-client"),
        NetworkPortObject(f"127.0.0.1/8:{free_udp_port()}", objectIdentifier=("network-port", 1),
                          objectName="NetworkPort-1")])
    addr = Address(f"127.0.0.1:{port}")
    points = requests = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    try:
        while time.perf_counter() < deadline:
            if per_point:
                for i in range(n_pts):
                    try:
                        await asyncio.wait_for(app.read_property(addr, f"analog-input,{i}", "present-value"), 10)
                    except TimeoutError:
                        continue
                    points += 1
                    requests += 1
                    if time.perf_counter() >= deadline:
                        break
            else:
                for start in range(0, n_pts, batch):
                    spec: list[Any] = []
                    for i in range(start, min(n_pts, start + batch)):
                        spec += [f"analog-input,{i}", ["present-value"]]
                    try:
                        res = await asyncio.wait_for(app.read_property_multiple(addr, spec), 10)
                    except TimeoutError:  # a lost datagram on a loaded machine: counted as nothing served
                        continue
                    points += len(res)
                    requests += 1
    finally:
        app.close()
    return points, requests, time.perf_counter() - t0


def bench_bacnet(quick: bool) -> None:
    from retrofit.devservers import free_udp_port

    n_pts, secs = 200, (3.0 if quick else 10.0)
    port = free_udp_port()
    ready = mp.Event()
    proc = mp.Process(target=_bacnet_server, args=(port, n_pts, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(120):
            raise RuntimeError("BACnet simulator did not start")
        base_pts, base_req, base_t = asyncio.run(_bacnet_load(port, n_pts, secs / 2, per_point=True))
        pts, req, t = asyncio.run(_bacnet_load(port, n_pts, secs, per_point=False))
    finally:
        proc.terminate()
        proc.join(10)
    emit("simulators.bacnet", "points_per_s_served", pts / t, "points/s", base_pts / base_t)
    emit("simulators.bacnet", "requests_per_s_served", req / t, "requests/s", base_req / base_t)


# --- backfill: the physics part (simulators engineer) -----------------------------------------------------

def _live_path_rate(site: Any, start: float, steps: int) -> float:
    """Baseline: readings/s when history is made by stepping the live simulator one timestamp at a time."""
    from simulators.site_sim import SiteSimulation

    sim = SiteSimulation(site, seed=0, start=start, clock=lambda: 0.0)
    sim.snapshot(start)  # warm the counter checkpoints, as the vectorised run below also has them
    t0 = time.perf_counter()
    n = 0
    for i in range(steps):
        n += len(sim.rows(start + 900.0 * (i + 1)))
    return n / (time.perf_counter() - t0)


def bench_backfill(quick: bool) -> None:
    """Backfill of the sample district at 15-minute resolution into a fresh embedded store.

    Full mode writes 13 months (2025-10-01 to 2026-11-01); --quick writes 7 days and extrapolates the
    13-month time from the measured rate (the metric name says so). Baseline: the same readings produced by
    stepping the live simulator timestamp by timestamp.
    """
    import tempfile

    from buildings.site import load_site
    from retrofit.history import generate
    from simulators.history import backfill
    from telemetry.embedded import EmbeddedStore

    site = load_site(str(SAMPLE_SITE))
    start = 1759248000.0  # 2025-10-01 00:00 Asia/Shanghai
    months13 = 1761926400.0 - start + 365 * 86400.0  # to 2026-11-01
    span = 7 * 86400.0 if quick else months13
    baseline = _live_path_rate(site, start, 8 if quick else 24)
    t0 = time.perf_counter()
    n_mem = sum(len(b) for b in generate(site, start, start + 2 * 86400.0))
    emit("simulators.backfill", "generate_readings_per_s_in_memory", n_mem / (time.perf_counter() - t0),
         "readings/s", baseline)
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(os.path.join(tmp, "telemetry.db"))
        try:
            stats = backfill(site, store, start, start + span, seed=0)
        finally:
            store.close()
    emit("simulators.backfill", "backfill_readings_per_s_embedded_store", stats.rate, "readings/s", baseline)
    total = len(site.points) * months13 / 900.0
    if quick:
        emit("simulators.backfill", "backfill_13_months_s_extrapolated_from_7_days", total / stats.rate, "s",
             total / baseline)
    else:
        emit("simulators.backfill", "backfill_13_months_s", stats.seconds, "s", total / baseline)
    emit("simulators.backfill", "backfill_13_months_readings", total, "readings")
    # InfluxDB drops points older than its raw retention (400 days by default): use the last days before now
    span_i = 2 * 86400.0 if quick else 14 * 86400.0
    _bench_backfill_influx(site, (time.time() // 86400.0) * 86400.0 - span_i - 86400.0, span_i, baseline)


def _bench_backfill_influx(site: Any, start: float, span: float, baseline: float) -> None:
    """The same backfill into a real influxd (line protocol over HTTP) on a free loopback port."""
    import tempfile
    from pathlib import Path

    from retrofit.devservers import start_influxd
    from simulators.history import backfill
    from simulators.points import SitePhysics
    from telemetry.influx import InfluxStore

    warm = SitePhysics(site, seed=0)  # counters since 2025-01-01 are integrated once per process: not the write
    for bid in warm.models:
        warm.counter_base(bid, warm.local_day(bid, start))
    with tempfile.TemporaryDirectory() as tmp:
        server = start_influxd(Path(tmp) / "influxd")
        try:
            store = InfluxStore(f"http://127.0.0.1:{server.port}", database="bench_backfill")
            try:
                stats = backfill(site, store, start, start + span, seed=0)
            finally:
                store.close()
        finally:
            server.stop()
    emit("simulators.backfill", f"backfill_readings_per_s_influxdb_{int(span // 86400)}_days", stats.rate,
         "readings/s", baseline)


BENCHES = {"modbus": bench_modbus, "bacnet": bench_bacnet, "backfill": bench_backfill}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (under a minute in all)")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHES))
    args = ap.parse_args()
    chosen = [b for b in args.only.split(",") if b] or list(BENCHES)
    for name in chosen:
        if name not in BENCHES:
            ap.error(f"unknown bench {name!r}; choose from {', '.join(BENCHES)}")
        BENCHES[name](args.quick)


if __name__ == "__main__":
    main()
