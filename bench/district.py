"""District benchmark: 200 buildings x 300 points polled every 60 s (1,000 points/s) through the whole pipeline.

Run: .venv/bin/python bench/district.py [--quick] [--buildings N] [--points N] [--interval S]
(--quick: the same 1,000 points/s offered by 40 buildings polled every 12 s, 24 s of measurement.)
Prints one JSON line per result: bench, metric, value, unit, baseline, ratio (null: no baseline; the targets
are absolute, from issue 9).

- The site is generated: N synthetic Modbus-heavy buildings (one Modbus TCP meter/controller per building on
  its own free port, 10 zones x 30 float32 points of the Brick classes the rule library binds to: temperature,
  humidity, CO2, CO, power), written as JSON site files and loaded by the real loader.
- Our own Modbus simulator (simulators/servers/modbus.start_modbus) serves every building from one child
  process, values from a cheap deterministic ValueSource (smooth daily curves plus noise, so flatline rules
  stay quiet).
- The real `retrofit collect` runs as its own process: planner + poll loops + rules engine (in-process, alarms
  to the records DB) + durable buffer + writer into a throwaway InfluxDB 1.x (retrofit/devservers.start_influxd).
- Measured on the collector process only (psutil): CPU as % of one core averaged over the measurement window
  (after the first poll cycle has started), peak resident memory; reading lateness from InfluxDB: the largest
  gap between consecutive readings of one point minus the poll interval (a poll later than its schedule), and
  the store lag: from a reading's timestamp until InfluxDB counts it (probed every 2 s). Targets: CPU < 30 %,
  RSS < 500 MB, lateness < interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retrofit.devservers import free_port, start_influxd  # noqa: E402

DB = "district"
# (Brick class, unit, base, daily amplitude, noise, valid range): what a zone controller / sub-meter reports.
KINDS = [
    ("Zone_Air_Temperature_Sensor", "degC", 24.0, 2.0, 0.3, [0, 45]),
    ("Zone_Air_Humidity_Sensor", "%RH", 55.0, 8.0, 2.0, [0, 100]),
    ("CO2_Sensor", "ppm", 600.0, 150.0, 30.0, [300, 5000]),
    ("CO_Sensor", "ppm", 1.0, 0.5, 0.3, [0, 500]),
    ("Active_Power_Sensor", "kW", 20.0, 10.0, 1.5, [0, 2000]),
    ("Air_Temperature_Sensor", "degC", 22.0, 3.0, 0.3, [-10, 60]),
]


def emit(metric: str, value: float, unit: str, baseline: float | None = None, ratio: float | None = None) -> None:
    print(json.dumps({"bench": "district", "metric": metric, "value": round(value, 3), "unit": unit,
                      "baseline": None if baseline is None else round(baseline, 3),
                      "ratio": None if ratio is None else round(ratio, 3)}), flush=True)


def make_site(directory: Path, buildings: int, points: int, interval: float) -> None:
    """Write ``buildings`` JSON building files (JSON is YAML 1.2; dumping 60,000 points through YAML is slow)."""
    directory.mkdir(parents=True, exist_ok=True)
    used: set[int] = set()
    zones = max(1, points // 30)
    per_zone = math.ceil(points / zones)
    for b in range(buildings):
        while (port := free_port()) in used:
            pass
        used.add(port)
        bid = f"district-{b:03d}"
        dev = {"id": "ddc", "protocol": "modbus", "port": port, "unit_id": 1, "poll_interval_s": interval,
               "timeout_s": 5}
        equipment, n = [], 0
        for z in range(zones):
            pts = []
            for i in range(per_zone):
                if n >= points:
                    break
                brick, unit, _, _, _, rng = KINDS[i % len(KINDS)]
                pts.append({"id": f"z{z}-p{i}", "name": f"zone {z} point {i}", "brick": brick, "unit": unit,
                            "range": rng, "modbus": {"device": "ddc", "address": n * 2, "type": "float32"}})
                n += 1
            equipment.append({"id": f"zone-{z}", "name": f"zone {z}", "kind": "zone", "points": pts})
        doc = {"building": {"id": bid, "name": {"zh": f"楼宇{b}", "en": f"Building {b}"}, "address": "-",
                            "year_built": 1998, "gross_floor_area_m2": 20000, "use": "office",
                            "owners": [{"owner": f"o{b}", "name": f"Owner {b}", "area_m2": 20000}]},
               "devices": [dev], "equipment": equipment}
        (directory / f"{bid}.yaml").write_text(json.dumps(doc, ensure_ascii=False, indent=0), "utf-8")


# --- the simulator (child process) ----------------------------------------------------------------------------


class DistrictValues:
    """Deterministic plausible values: a daily curve per class plus per-point noise that changes every call."""

    def __init__(self) -> None:
        self._kind: dict[str, tuple[float, float, float]] = {}
        self._n = 0

    def value(self, key: str) -> float:
        k = self._kind.get(key)
        if k is None:
            i = int(key.rsplit("-p", 1)[1]) % len(KINDS)
            k = self._kind[key] = KINDS[i][2:5]
        base, amp, noise = k
        self._n += 1
        t = time.time()
        jitter = ((zlib.crc32(key.encode()) ^ (self._n * 2654435761)) & 0xFFFF) / 0xFFFF - 0.5
        return base + amp * math.sin(t / 86400 * 2 * math.pi) + noise * 2 * jitter

    def device_mode(self, key: str) -> Any:
        from simulators.values import DeviceMode

        return DeviceMode.OK

    def now(self) -> float:
        return time.time()


def serve(site_dir: str) -> None:
    """Child process: serve every building of the generated site over Modbus TCP until stdin closes."""
    from buildings.site import load_site
    from simulators.servers.modbus import start_modbus

    async def main() -> None:
        site = load_site(site_dir)
        servers = await start_modbus(site, DistrictValues(), refresh_s=5.0)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for s in servers:
            await s.stop()

    asyncio.run(main())


# --- measuring ----------------------------------------------------------------------------------------------------


def influx(port: int, q: str) -> list[dict[str, Any]]:
    import requests

    r = requests.post(f"http://127.0.0.1:{port}/query", data={"db": DB, "q": q, "epoch": "ms"}, timeout=300)
    r.raise_for_status()
    return r.json()["results"]


def scalar(port: int, q: str) -> float | None:
    res = influx(port, q)
    try:
        return res[0]["series"][0]["values"][0][1]
    except (KeyError, IndexError):
        return None


def start_simulator(site_dir: Path, args: argparse.Namespace) -> subprocess.Popen:
    """Generate the site on free ports and serve it; a port taken in between (the machine is shared) means a
    fresh site and another try."""
    for _attempt in range(3):
        make_site(site_dir, args.buildings, args.points, args.interval)
        sim = subprocess.Popen([sys.executable, __file__, "--serve", str(site_dir)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
        if "ready" in (sim.stdout.readline() if sim.stdout else ""):
            return sim
        sim.wait(30)
    raise RuntimeError("the district simulator did not start (see its error above)")


def store_lag(port: int, wall0: float, probes: list[tuple[float, int]]) -> float:
    """Largest delay between a reading's timestamp (1 s buckets) and the first probe that saw it counted in
    InfluxDB (readings arrive in time order per cycle, so the cumulative count says when a bucket was in)."""
    res = influx(port, f'SELECT count("value") FROM "readings" WHERE time >= {int(wall0 * 1000)}ms '
                 'GROUP BY time(1s) fill(none)')
    buckets = [(t / 1000, n) for t, n in res[0].get("series", [{}])[0].get("values", [])] if res else []
    worst, cum, i = 0.0, 0, 0
    for ts, n in buckets:
        cum += n
        while i < len(probes) and probes[i][1] < cum:
            i += 1
        if i == len(probes):
            break  # stored after the last probe (the window's final seconds): not measured
        worst = max(worst, probes[i][0] - (ts + 1))
    return worst


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the same 1,000 points/s from 40 buildings polled every "
                    "12 s, measured for 24 s (under a minute in all); the full run is 200 buildings every 60 s")
    ap.add_argument("--buildings", type=int, default=None, help="default 200 (--quick 40)")
    ap.add_argument("--points", type=int, default=300, help="points per building")
    ap.add_argument("--interval", type=float, default=None, help="poll interval, seconds (default 60, --quick 12)")
    ap.add_argument("--minutes", type=float, default=None, help="measurement window (default 5, --quick 0.4)")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.buildings is None:
        args.buildings = 40 if args.quick else 200
    if args.interval is None:
        args.interval = 12.0 if args.quick else 60.0
    args.window = 60 * (args.minutes if args.minutes is not None else (0.4 if args.quick else 5))
    return args


def start_collector(tmp: Path, site_dir: Path, data: Path, influx_port: int) -> subprocess.Popen:
    """The real `retrofit collect` on the generated site, writing into the throwaway InfluxDB."""
    (tmp / "none.toml").write_text("")
    env = {**os.environ, "RETROFIT_DATA_DIR": str(data), "RETROFIT_CONFIG": str(tmp / "none.toml"),
           "RETROFIT_INFLUX_URL": f"http://127.0.0.1:{influx_port}", "RETROFIT_INFLUX_DATABASE": DB}
    for k in ("RETROFIT_MQTT_URL", "RETROFIT_RECORDS_URL"):
        env.pop(k, None)
    log = open(tmp / "collect.log", "wb")  # noqa: SIM115 - held by the child
    collector = subprocess.Popen([sys.executable, "-m", "retrofit.cli", "collect", "--site", str(site_dir),
                                  "--log-level", "WARNING"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return collector


def wait_started(collector: subprocess.Popen, status: Path, log: Path) -> float:
    """Seconds until the collector is up (status file written: site loaded, rules bound, polling)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + 300
    while not status.exists():
        if collector.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the collector did not start; see {log}")
        time.sleep(0.2)
    return time.perf_counter() - t0


@dataclass
class Window:
    """What the measurement window saw of the collector process."""

    wall0: float
    elapsed: float
    startup_cpu: float
    cpu_pct: float
    peak_rss: float
    probes: list[tuple[float, int]]  # (wall time, readings stored since the window began)


def measure(pid: int, influx_port: int, window: float) -> Window:
    """CPU and peak memory of the collector over the window, and InfluxDB's reading count every 2 s."""
    import psutil

    proc = psutil.Process(pid)
    cpu0 = proc.cpu_times()
    w0 = time.monotonic()
    wall0 = time.time()
    peak_rss = 0.0
    probes: list[tuple[float, int]] = []
    since = f'SELECT count("value") FROM "readings" WHERE time >= {int(wall0 * 1000)}ms'
    while time.monotonic() < w0 + window:
        peak_rss = max(peak_rss, proc.memory_info().rss / 2**20)
        probes.append((time.time(), int(scalar(influx_port, since) or 0)))
        time.sleep(2.0)
    cpu1 = proc.cpu_times()
    elapsed = time.monotonic() - w0
    cpu_pct = 100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / elapsed
    return Window(wall0, elapsed, cpu0.user + cpu0.system, cpu_pct, peak_rss, probes)


def report(args: argparse.Namespace, w: Window, startup_s: float, st: dict[str, Any], influx_port: int) -> None:
    """Emit every result line (after the collector stopped and flushed)."""
    expected = args.buildings * args.points
    stored = scalar(influx_port, f'SELECT count("value") FROM "readings" WHERE time >= {int(w.wall0 * 1000)}ms')
    gap = scalar(influx_port, 'SELECT max("e") FROM (SELECT elapsed("value", 1ms) AS "e" FROM "readings" '
                 'GROUP BY "point")')
    series = scalar(influx_port, 'SELECT count("c") FROM (SELECT count("value") AS "c" FROM "readings" '
                    'GROUP BY "point")')
    devices = st.get("devices", {})
    emit("points_per_s_offered", expected / args.interval, "points/s")
    emit("collector_startup_s", startup_s, f"s (load {args.buildings} site files, bind rules, first status)")
    emit("collector_startup_cpu", w.startup_cpu, "CPU s")
    emit("window_s", w.elapsed, "s")
    emit("collector_cpu", w.cpu_pct, "% of one core (target < 30)")
    emit("collector_rss_peak", w.peak_rss, "MB (target < 500)")
    offered = expected * w.elapsed / args.interval
    emit("readings_stored_in_window", stored or 0, "readings", offered, (stored or 0) / max(1.0, offered))
    emit("series_stored", series or 0, "points", expected, (series or 0) / expected)
    emit("max_gap_minus_interval", ((gap or 0) / 1000 - args.interval) if gap else float("nan"),
         f"s (lateness, target < {args.interval:g})")
    emit("store_lag_max", store_lag(influx_port, w.wall0, w.probes), "s from a reading's timestamp to InfluxDB "
         f"answering it (probed every 2 s; target < {args.interval:g})")
    sinks = (st.get("pipeline") or {}).get("sinks", {})
    for name in ("store", "rules"):  # both must be in the pipeline: the rules engine evaluates live
        emit(f"{name}_sink_readings", sinks.get(name, {}).get("readings", 0), "readings (status file)")
    emit("poll_overruns", sum(d.get("overruns", 0) for d in devices.values()), "cycles")
    emit("device_latency_max", float(max((d.get("max_latency_s") or 0) for d in devices.values()) if devices else 0),
         "s")


def stop(proc: subprocess.Popen | None, timeout: float = 60) -> None:
    """SIGTERM a child we started, and kill it if it does not end in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args.serve)
        return
    tmp = Path(tempfile.mkdtemp(prefix="retrofit-bench-district-"))
    site_dir, data = tmp / "site", tmp / "data"
    influxd = start_influxd(tmp / "influxd")  # first: its ports must not be among the buildings'
    collector: subprocess.Popen | None = None
    sim = start_simulator(site_dir, args)
    try:
        collector = start_collector(tmp, site_dir, data, influxd.port)
        status = data / "collector-status.json"
        startup_s = wait_started(collector, status, tmp / "collect.log")
        w = measure(collector.pid, influxd.port, args.window)
        st = json.loads(status.read_text())
        collector.send_signal(signal.SIGTERM)
        collector.wait(120)
        collector = None
        report(args, w, startup_s, st, influxd.port)
    finally:
        stop(collector)
        if sim.stdin:
            sim.stdin.close()
        try:
            sim.wait(30)
        except subprocess.TimeoutExpired:
            sim.kill()
        influxd.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
