"""The physics of a simulated building, vectorised over time with numpy.

One ``BuildingModel`` per building of a site. ``run(day0, n_days)`` returns every physical signal of the
building (outdoor weather, occupancy, zone temperatures and CO2, AHU temperatures/valves/dampers/fan/static
pressure, chiller load/power/COP, pumps, towers, lights, lifts, meters, rooms, garage, kitchen, water, gas) on a
15-minute grid for whole local days, as 1-D arrays. Bindings (simulators/binding.py) turn signals into point
values.

Why whole days with a warm-up: zone temperature and CO2 have memory (thermal mass). Each day is simulated from
``WARM_DAYS`` days before it, all days in parallel (a day is a row), so a value is a pure function of time: the
live simulator and the history generator give the same numbers, whatever the chunking.

Sizes are scaled to the site: loads of each Chinese sub-item category (lighting_sockets, hvac, power, special)
are scaled so that the peak of each sub-meter stays within its declared range and below 72 % of its breaker's
continuous rating, and the whole building so the main meter does too (calibrated on the hottest days of the
year, before any retrofit). Meters are sums of what runs, so the main meter equals the sub-items plus 1 % losses.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from buildings.site import BuildingFile, Equipment
from simulators import rand
from simulators.faults import Fault, FaultKind
from simulators.weather import DAY, Weather, WeatherSample

STEP = 900.0  # physics grid: 15 minutes
STEPS = int(DAY // STEP)  # grid points per day
WARM_DAYS = 2  # days simulated before each day for zone temperature / CO2 memory
DT_H = STEP / 3600.0
CATEGORIES = ("lighting_sockets", "hvac", "power", "special")
ZONE_KINDS = ("zone", "vav", "fcu")
ZONE_BRICKS = ("Zone_Air_Temperature_Sensor", "CO2_Sensor", "Zone_Air_Humidity_Sensor", "Occupancy_Sensor")
V_PHASE = 230.0
# A meter's design peak as a share of its breaker's kW (3 x 230 V x I x pf 0.9). The demand warning
# (e-peak-demand-warn) is at 85 % of 80 % of the breaker, about 68 % of that figure: at 70 % the hottest days
# calibrated but a busier ordinary day went 2 % over and raised it in a fault-free July week; 65 % leaves
# 5 % for the days the calibration does not run.
DESIGN_PEAK_OF_BREAKER = 0.65


def tz_offset(tz: str) -> float:
    """UTC offset in seconds of a timezone (Chongqing has no DST; we take the offset at 2025-01-01)."""
    from zoneinfo import ZoneInfo

    off = dt.datetime(2025, 1, 1, tzinfo=ZoneInfo(tz)).utcoffset()
    return off.total_seconds() if off else 0.0


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def vapour_kpa(t_c: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure of water over a flat surface (kPa) at ``t_c`` degC (Magnus, WMO-No. 8)."""
    return 0.6112 * np.exp(17.62 * t_c / (243.12 + t_c))


def has_brick(eq: Equipment, bricks: tuple[str, ...]) -> bool:
    return any(p.brick in bricks for p in eq.points)


def words(*parts: str | None) -> str:
    return " ".join(p.lower() for p in parts if p)


@dataclass
class Zone:
    id: str  # equipment id, or "<ahu>.zone" / "_zone" for a virtual zone
    area: float
    gain_occ: float
    gain_sol: float
    density: float
    ahu: str | None = None  # serving AHU id; None = local units (FCU / split) on the building schedule


@dataclass
class Circuit:
    """A lighting circuit (one Lighting_Status point, or a lighting equipment without points)."""

    key: str  # signal name of its on-state
    kw: float
    mode: str  # office | night | extended
    offset_h: float


@dataclass
class Sizing:
    """Scale factors fitted to the site's meters (1.0 = the physics' own sizes)."""

    category: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 1.0))
    total: float = 1.0
    peak_total: float = 0.0  # kW, the main meter's calibrated peak (switch-room heat, power factor)


@dataclass(frozen=True)
class PhysicsParams:
    """The numbers of the building physics, named and documented (one place to read or change them).

    Temperatures in degC, differences in K, times in hours, powers per floor area in W/m2 or kW/m2.
    """

    # comfort and season
    cool_setpoint_c: float = 24.0  # zone setpoint in the cooling season (GB 50736 summer comfort 24-28 C)
    heat_setpoint_c: float = 21.0  # zone setpoint in the heating season (GB 50736 winter comfort 18-22 C)
    cool_band_k: tuple[float, float] = (-1.5, 0.5)  # zone held within setpoint + (low, high) when cooling
    heat_band_k: tuple[float, float] = (-0.5, 1.2)  # ... and when heating
    changeover_c: float = 17.0  # cooling season when the mean outdoor temperature of the days around is above
    changeover_days: int = 7  # how many days that mean spans (a plant changes over between seasons, not daily)
    starved_k: float = 1.8  # a zone of an AHU that cannot hold static pressure runs this much warmer
    # schedule and occupancy
    prestart_h: float = 0.5  # optimum start: HVAC on this long before occupancy
    legacy_prestart_h: float = 2.5  # fixed early start before a schedule_fix retrofit
    occ_day_spread: float = 0.2  # day-to-day occupancy varies by up to this fraction
    lunch_h: float = 12.4  # lunch dip centre (local hour)
    lunch_width_h: float = 0.6
    lunch_dip: float = 0.3  # fraction of people out at lunch
    # zone thermal model
    free_float_k: float = 3.5  # a closed, unconditioned zone settles this much above outdoor air
    zone_tau_h: float = 16.0  # free-floating time constant (heavy old building)
    hvac_pull: float = 0.7  # fraction of the gap to the comfort band the HVAC closes per 15-minute step
    hvac_max_k_per_h: float = 8.0  # ... but no faster than its capacity allows (room air, 2 K per 15 min)
    # zone air quality
    co2_outdoor_ppm: float = 420.0
    co2_occupied_ppm: float = 380.0  # CO2 above outdoor at full occupancy and design ventilation
    vent_off_fraction: float = 0.3  # infiltration as a fraction of design outdoor air when the HVAC is off
    co2_tau_on_h: float = 0.6  # CO2 time constant with the HVAC on (about 1.7 air changes per hour)
    co2_tau_off_h: float = 2.5  # ... and off (infiltration only)
    rh_on_pct: float = 52.0  # zone RH held by the cooling coil / humidifier at outdoor RH 70 %
    rh_on_oa_slope: float = 0.2  # %RH per %RH of outdoor air above 70 %
    rh_on_occ_pct: float = 5.0  # %RH added by full occupancy (people, plants, mopping)
    occ_vapour_kpa: float = 0.15  # vapour pressure added by full occupancy with the HVAC off
    moisture_tau_on_h: float = 1.0  # room moisture follows the coil with this time constant (air + furnishings)
    moisture_tau_off_h: float = 3.0  # ... and outdoor air by infiltration, buffered by hygroscopic materials
    rh_limits_pct: tuple[float, float] = (15.0, 98.0)
    # loads
    cool_load_span_k: float = 22.0  # equilibrium this far above the band = full cooling load
    heat_load_span_k: float = 12.0  # equilibrium this far below the band = full heating load
    damper_min_pct: float = 25.0  # VAV minimum damper position while the unit runs
    local_cool_kw_m2: float = 0.09  # design cooling of zones on local units (fan coils, splits)
    local_heat_kw_m2: float = 0.06  # design heating of zones on local units
    fan_coil_fan_ratio: float = 0.03  # fan-coil fan kW per kW of cooling
    split_cop: float = 3.2
    heat_pump_cop: float = 2.6
    dx_cop: float = 3.6  # packaged rooftop (DX) cooling
    lpd_w_m2: float = 10.0  # lighting power density before an LED retrofit (GB 50034 office 9-15)
    lpd_led_w_m2: float = 5.5
    plug_w_m2: float = 11.0
    special_w_m2: float = 1.8  # data rooms, security, BMS: always on


DEFAULT_PARAMS = PhysicsParams()


@dataclass
class TimeBase:
    """One run's extended grid (WARM_DAYS warm-up days first): schedule, occupancy, HVAC state, season."""

    t: np.ndarray
    wx: WeatherSample
    hour: np.ndarray
    day: np.ndarray
    s0: np.ndarray  # occupied start hour (0 on closed days)
    e0: np.ndarray
    open_day: np.ndarray
    occupied: np.ndarray
    occ: np.ndarray  # occupancy 0..1
    bldg_on: np.ndarray  # the building's HVAC schedule (plus building-wide after-hours faults)
    ahu_on: dict[str, np.ndarray]
    cooling: np.ndarray  # cooling season (per day)
    sp: np.ndarray  # zone setpoint

    @property
    def out(self) -> slice:
        return slice(WARM_DAYS * STEPS, None)

    def output(self) -> Output:
        """The output days only (no warm-up)."""
        o = self.out
        return Output(t=self.t[o], oat=self.wx.oat[o], rh=self.wx.rh[o], solar=self.wx.solar[o],
                      daily_mean=self.wx.daily_mean[o], occ=self.occ[o], hour=self.hour[o], day=self.day[o],
                      occupied=self.occupied[o], open_day=self.open_day[o], s=self.s0[o], e=self.e0[o],
                      bldg_on=self.bldg_on[o], cooling=self.cooling[o], sp=self.sp[o],
                      step_idx=np.round(self.t[o] / STEP).astype(np.int64), vfd=np.zeros(0, dtype=bool))


@dataclass
class Output:
    """The time base on the output days (what the signals are computed on)."""

    t: np.ndarray
    oat: np.ndarray
    rh: np.ndarray
    solar: np.ndarray
    daily_mean: np.ndarray
    occ: np.ndarray
    hour: np.ndarray
    day: np.ndarray
    occupied: np.ndarray
    open_day: np.ndarray
    s: np.ndarray
    e: np.ndarray
    bldg_on: np.ndarray
    cooling: np.ndarray
    sp: np.ndarray
    step_idx: np.ndarray
    vfd: np.ndarray  # variable-speed fans and pumps in effect


@dataclass
class ZoneStates:
    """Zone temperature and CO2 (output days) and the per-zone inputs the signals need."""

    T: np.ndarray
    C: np.ndarray
    rh: np.ndarray  # zone relative humidity, % (from the moisture state and the zone temperature)
    teq: np.ndarray
    on: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


class BuildingModel:
    """The physics of one building (see module doc)."""

    def __init__(self, bf: BuildingFile, seed: int, weather: Weather, faults: list[Fault] | None = None,
                 retrofit: bool = True, sizing: Sizing | None = None,
                 params: PhysicsParams = DEFAULT_PARAMS) -> None:
        self.bf = bf
        self.params = params
        self.b = bf.building
        self.id = self.b.id
        self.seed = seed
        self.weather = weather
        self.off = tz_offset(self.b.timezone)
        self.k = rand.key64("building", seed, self.id)
        self.faults = [f for f in (faults or []) if f.target.split("/")[0] == self.id]
        self.area = self.b.gross_floor_area_m2
        self.declared = set(self.b.retrofit_measures)  # what the site file says the retrofit does
        self.measures = self.declared if retrofit else set()  # what is in effect in this run
        rd = self.b.retrofit_date
        self.retrofit_day = (dt.date(rd.year, rd.month, rd.day) - dt.date(1970, 1, 1)).days if rd else None
        self.eq = {e.id: e for e in bf.equipment}
        kinds: dict[str, list[Equipment]] = {}
        for e in bf.equipment:
            kinds.setdefault(e.kind, []).append(e)
        self.kinds = kinds
        self.ahus = kinds.get("ahu", []) + kinds.get("rtu", [])
        self.chillers = kinds.get("chiller", [])
        self._layout_zones()
        self._layout_lights()
        self.pumps_hvac = [p for p in kinds.get("pump", []) if self._pump_is_hvac(p)]
        self.pumps_water = [p for p in kinds.get("pump", []) if not self._pump_is_hvac(p)]
        self.garage_fans = [f for f in kinds.get("fan", []) if "garage" in words(f.id, f.name, f.location)
                            or "parking" in words(f.id, f.name)]
        self.other_fans = [f for f in kinds.get("fan", []) if f not in self.garage_fans]
        self.sizing = sizing or Sizing()
        # design sizes (before site scaling)
        self.design_flow = {a.id: 7.0 * max(self._served_area(a.id), 0.05 * self.area) for a in self.ahus}  # m3/h
        self.fan_kw = {a: 0.00045 * f for a, f in self.design_flow.items()}
        peak_q = sum(1.2 * f / 3600 * 1.006 * 20.0 * 1.25 for f in self.design_flow.values())
        peak_q += sum(z.area * 0.09 for z in self.zones if z.ahu is None) if self.chillers else 0.0
        self.chiller_cap = 1.1 * peak_q / max(1, len(self.chillers)) if self.chillers else 0.0

    # --- layout ------------------------------------------------------------------------------------
    def _layout_zones(self) -> None:
        zone_eqs = [e for e in self.bf.equipment
                    if e.kind in ZONE_KINDS or (e.kind == "sensor_node" and has_brick(e, ZONE_BRICKS))]
        served: dict[str, str] = {}
        for a in self.ahus:
            for z in a.feeds:
                served.setdefault(z, a.id)
        any_feeds = any(a.feeds for a in self.ahus)
        ids = [e.id for e in zone_eqs]
        if self.ahus and not any_feeds:  # nobody said who serves what: share the zones round-robin
            plain = [e.id for e in zone_eqs if e.kind in ("zone", "vav")]
            for i, z in enumerate(plain):
                served[z] = self.ahus[i % len(self.ahus)].id
        for a in self.ahus:  # an AHU that serves nothing conditions a zone of its own
            if a.id not in served.values():
                ids.append(f"{a.id}.zone")
                served[f"{a.id}.zone"] = a.id
        if not ids:
            ids = ["_zone"]
        share = 0.8 * self.area / len(ids)
        self.zones = []
        for z in ids:
            kz = rand.key64(self.k, "zone", z)
            u = rand.uniform(kz, np.arange(4))
            self.zones.append(Zone(id=z, area=share, gain_occ=4.5 + 2.0 * u[0], gain_sol=1.0 + 2.5 * u[1],
                                   density=0.8 + 0.45 * u[2], ahu=served.get(z)))
        self.zone_index = {z.id: i for i, z in enumerate(self.zones)}

    def _served_area(self, ahu_id: str) -> float:
        return sum(z.area for z in self.zones if z.ahu == ahu_id)

    def _layout_lights(self) -> None:
        circuits: list[Circuit] = []
        for e in self.kinds.get("lighting", []):
            pts = [p for p in e.points if p.brick == "Lighting_Status"] or [None]
            for p in pts:
                w = words(e.id, e.name, p.id if p else None, p.name if p else None)
                mode = ("night" if any(s in w for s in ("facade", "signage", "yard", "sign", "outdoor")) else
                        "extended" if any(s in w for s in ("garage", "corridor", "stair", "lobby", "hall", "public"))
                        else "office")
                key = f"{e.id}.{p.id if p else 'on'}"
                off = float(rand.uniform(rand.key64(self.k, key), 0)) * 0.25
                circuits.append(Circuit(key=key, kw=0.3 if mode == "night" else 1.0, mode=mode, offset_h=off))
        if not circuits:
            circuits.append(Circuit(key="_lights.on", kw=1.0, mode="office", offset_h=0.0))
        total = sum(c.kw for c in circuits)
        for c in circuits:
            c.kw = c.kw / total  # fraction of the building's lighting power
        self.circuits = circuits

    def _pump_is_hvac(self, p: Equipment) -> bool:
        hint = p.points[0].sim.get("pump") if p.points else None
        if hint:
            return hint == "hvac"
        w = words(p.id, p.name)
        if any(s in w for s in ("water supply", "domestic", "booster", "sewage", "drain", "fire")):
            return False
        return bool(self.chillers) or any(s in w for s in ("chw", "cw", "chilled", "condenser", "hw"))

    def retrofit_on(self, measure: str, day: np.ndarray) -> np.ndarray:
        """Per-step mask: the measure is in effect (retrofit date reached and measure chosen)."""
        if measure not in self.measures or self.retrofit_day is None:
            return np.zeros(day.shape, dtype=bool)
        return day >= self.retrofit_day

    # --- faults ---------------------------------------------------------------------------------------
    def fault_mask(self, t: np.ndarray, kind: FaultKind, targets: tuple[str, ...]) -> tuple[np.ndarray, Fault | None]:
        """Where a physics fault of this kind on any of the targets (keys) is active, and the fault."""
        m = np.zeros(t.shape, dtype=bool)
        hit = None
        for f in self.faults:
            if f.kind == kind and f.target in targets:
                m |= (t >= f.start) & (t < f.end)
                hit = f
        return m, hit

    def fault_elapsed_h(self, t: np.ndarray, fault: Fault | None) -> np.ndarray:
        if fault is None:
            return np.zeros(t.shape)
        return np.where((t >= fault.start) & (t < fault.end), (t - fault.start) / 3600.0, 0.0)

    def _eq_targets(self, eq_id: str, bricks: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Keys under which a fault may name this equipment: itself, or one of its points of these classes."""
        e = self.eq.get(eq_id)
        keys = [f"{self.id}/{eq_id}"]
        if e is not None:
            keys += [f"{self.id}/{p.id}" for p in e.points if not bricks or p.brick in bricks]
        return tuple(keys)

    # --- the day grid ----------------------------------------------------------------------------------
    def grid(self, day0: int, n_days: int) -> np.ndarray:
        """UTC epoch seconds of the grid points of local days [day0, day0 + n_days)."""
        return day0 * DAY - self.off + np.arange(n_days * STEPS) * STEP

    def day_of(self, t: float) -> int:
        return int(math.floor((t + self.off) / DAY))

    def _schedule(self, day0: int, n_days: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-day occupied (start, end) hours; NaN for unoccupied days."""
        s = np.full(n_days, np.nan)
        e = np.full(n_days, np.nan)
        base = dt.date(1970, 1, 1)
        for i in range(n_days):
            span = self.b.schedule.hours_for(base + dt.timedelta(days=day0 + i))
            if span is not None:
                s[i], e[i] = span
        return s, e

    # --- run ---------------------------------------------------------------------------------------------
    def run(self, day0: int, n_days: int) -> dict[str, np.ndarray]:
        """All signals for local days [day0, day0 + n_days) on the 15-minute grid."""
        tb = self._timebase(day0, n_days)
        zs = self._zone_states(tb, n_days)
        o = tb.output()
        o.vfd = self.retrofit_on("vfd_fans_pumps", o.day) | ("vfd_fans_pumps" not in self.declared)
        sig: dict[str, np.ndarray] = {"t": o.t}
        sig.update(oat=o.oat, oa_rh=o.rh, solar=o.solar, occ=o.occ, occupied=o.occupied.astype(float),
                   hvac_on=o.bldg_on.astype(float))
        zone_load = self._zone_signals(sig, tb, o, zs)
        hvac_parts = self._hvac(sig, tb, o, zone_load)
        light_kw, plug_kw = self._lighting(sig, o)
        power_parts, special = self._loads(sig, o)
        cat = {
            "lighting_sockets": light_kw + plug_kw,
            "hvac": np.sum(hvac_parts, axis=0) if hvac_parts else np.zeros(o.t.size),
            "power": np.sum(power_parts, axis=0) if power_parts else np.zeros(o.t.size),
            "special": np.sum(special, axis=0),
        }
        self._scale(sig, cat)
        self._meters(sig, o.t, cat, o.oat, o.daily_mean, o.rh)
        for w in self.kinds.get("weather", []):
            sig[f"{w.id}.oat"] = o.oat
        return sig

    def _timebase(self, day0: int, n_days: int) -> TimeBase:
        """The extended grid (WARM_DAYS before day0), schedule, occupancy, HVAC on-states and the season."""
        P = self.params
        ne = n_days + WARM_DAYS
        t = self.grid(day0 - WARM_DAYS, ne)
        hour = np.tile(np.arange(STEPS) * DT_H, ne)
        day = np.repeat(np.arange(day0 - WARM_DAYS, day0 + n_days), STEPS)
        s_d, e_d = self._schedule(day0 - WARM_DAYS, ne)
        s, e = np.repeat(s_d, STEPS), np.repeat(e_d, STEPS)
        open_day = ~np.isnan(s)
        s0, e0 = np.nan_to_num(s, nan=0.0), np.nan_to_num(e, nan=0.0)
        occupied = open_day & (hour >= s0) & (hour < e0)
        dayfac = 1.0 - P.occ_day_spread + P.occ_day_spread * rand.uniform(rand.key64(self.k, "dayfac"), day)
        lunch = np.exp(-(((hour - P.lunch_h) / P.lunch_width_h) ** 2))
        occ = np.where(open_day, smoothstep((hour - s0 + 0.25) / 1.0) * smoothstep((e0 - hour) / 1.0), 0.0)
        occ = occ * (1.0 - P.lunch_dip * lunch) * dayfac
        # optimum start before occupancy; before a schedule_fix retrofit, the old fixed early start
        prestart = np.where(self.retrofit_on("schedule_fix", day) | ("schedule_fix" not in self.declared),
                            P.prestart_h, P.legacy_prestart_h)
        sched_hvac = open_day & (hour >= s0 - prestart) & (hour < e0)
        ah_bldg, _ = self.fault_mask(t, FaultKind.AFTER_HOURS_HVAC, (self.id, f"{self.id}/"))
        bldg_on = sched_hvac | ah_bldg
        ahu_on = {}
        for a in self.ahus:
            m, _ = self.fault_mask(t, FaultKind.AFTER_HOURS_HVAC, (f"{self.id}/{a.id}",))
            ahu_on[a.id] = bldg_on | m
        # the season (cooling or heating setpoints) is decided once per day, from the mean temperature of the
        # days around it (a plant changes over between seasons, not every other day)
        half = P.changeover_days // 2
        noons = self.grid(day0 - WARM_DAYS - half, ne + 2 * half)[STEPS // 2::STEPS]
        week = np.convolve(self.weather.at(noons).daily_mean, np.ones(P.changeover_days) / P.changeover_days,
                           mode="valid")
        cooling = np.repeat(week >= P.changeover_c, STEPS)
        return TimeBase(t=t, wx=self.weather.at(t), hour=hour, day=day, s0=s0, e0=e0, open_day=open_day,
                        occupied=occupied, occ=occ, bldg_on=bldg_on, ahu_on=ahu_on, cooling=cooling,
                        sp=np.where(cooling, P.cool_setpoint_c, P.heat_setpoint_c))

    def _zone_states(self, tb: TimeBase, n_days: int) -> ZoneStates:
        """Per-zone equilibria and time constants, then the zone temperature / CO2 loop."""
        P = self.params
        Z, n_ext = len(self.zones), tb.t.size
        teq, on, lo, hi, ceq, ac, eeq, ae = (np.empty((Z, n_ext)) for _ in range(8))
        e_out = tb.wx.rh / 100.0 * vapour_kpa(tb.wx.oat)
        rh_on = P.rh_on_pct + P.rh_on_oa_slope * (tb.wx.rh - 70.0) + P.rh_on_occ_pct * tb.occ
        e_on = rh_on / 100.0 * vapour_kpa(tb.sp)
        cool = tb.cooling
        for i, z in enumerate(self.zones):
            teq[i] = tb.wx.oat + P.free_float_k + z.gain_occ * tb.occ + z.gain_sol * tb.wx.solar
            on_z = tb.ahu_on[z.ahu] if z.ahu else tb.bldg_on
            on[i] = on_z
            starve = np.zeros(n_ext, dtype=bool)
            if z.ahu:
                starve, _ = self.fault_mask(tb.t, FaultKind.DSP_NOT_MET, self._eq_targets(z.ahu))
            lo[i] = tb.sp + np.where(cool, P.cool_band_k[0], P.heat_band_k[0])
            hi[i] = tb.sp + np.where(cool, P.cool_band_k[1], P.heat_band_k[1]) + P.starved_k * starve
            # outdoor air lost at the zone, or at the AHU that serves it
            co2_keys = self._eq_targets(z.id.split(".")[0]) + (self._eq_targets(z.ahu) if z.ahu else ())
            vent_fault, f = self.fault_mask(tb.t, FaultKind.CO2_HIGH, co2_keys)
            vent = np.where(on_z, 1.0, P.vent_off_fraction) * np.where(
                vent_fault, f.param("ventilation") / 100.0 if f else 1.0, 1.0)
            ceq[i] = P.co2_outdoor_ppm + tb.occ * P.co2_occupied_ppm * z.density / vent
            ac[i] = np.where(on_z & ~vent_fault, DT_H / P.co2_tau_on_h, DT_H / P.co2_tau_off_h)
            eeq[i] = np.where(on_z, e_on, e_out + P.occ_vapour_kpa * tb.occ)
            ae[i] = np.where(on_z, DT_H / P.moisture_tau_on_h, DT_H / P.moisture_tau_off_h)
        T, C, E = self._zone_loop(teq, on, lo, hi, (ceq, eeq), (ac, ae), n_days)
        o = tb.out
        rh = np.clip(100.0 * E / vapour_kpa(T), *P.rh_limits_pct)
        return ZoneStates(T=T, C=C, rh=rh, teq=teq[:, o], on=on[:, o] > 0.5, lo=lo[:, o], hi=hi[:, o])

    def _zone_signals(self, sig: dict[str, np.ndarray], tb: TimeBase, o: Output,
                      zs: ZoneStates) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Zone temperature, CO2, RH, motion, damper, flow and lux; returns each zone's (cooling, heating) load."""
        P = self.params
        zone_load = {}
        for i, z in enumerate(self.zones):
            on_z, teq_z = zs.on[i], zs.teq[i]
            lc = np.clip((teq_z - zs.hi[i]) / P.cool_load_span_k, 0.0, 1.0) * o.cooling
            lh = np.clip((zs.lo[i] - teq_z) / P.heat_load_span_k, 0.0, 1.0) * ~o.cooling
            load = np.where(on_z, np.maximum(lc, lh), 0.0)
            zone_load[z.id] = (lc * on_z, lh * on_z)
            kz = rand.key64(self.k, "occ", z.id)
            motion = rand.uniform(kz, o.step_idx) < np.clip(o.occ * z.density * 1.3, 0, 1)
            damper = np.where(on_z, P.damper_min_pct + (95.0 - P.damper_min_pct) * load, 0.0)
            sig.update({f"{z.id}.t": zs.T[i], f"{z.id}.sp": o.sp, f"{z.id}.co2": zs.C[i],
                        f"{z.id}.rh": zs.rh[i], f"{z.id}.occ": motion.astype(float),
                        f"{z.id}.damper": damper, f"{z.id}.flow": damper / 100.0 * 8.0 * z.area,
                        f"{z.id}.on": on_z.astype(float), f"{z.id}.load": load,
                        f"{z.id}.lux": np.where(o.occupied, 430.0, 15.0) + 250.0 * o.solar})
        sig["zones.t"] = zs.T.mean(axis=0)
        sig["zones.co2"] = zs.C.mean(axis=0)
        sig["zones.rh"] = np.mean([sig[f"{z.id}.rh"] for z in self.zones], axis=0)
        return zone_load

    def _hvac(self, sig: dict[str, np.ndarray], tb: TimeBase, o: Output,
              zone_load: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Air handlers, local units (fan coils or splits) and the chiller plant; returns the HVAC powers (kW)."""
        P = self.params
        hvac_parts: list[np.ndarray] = []
        q_cool_total = np.zeros(o.t.size)
        ahu_on = {a: m[tb.out] for a, m in tb.ahu_on.items()}
        for a in self.ahus:
            self._ahu(a, sig, o.t, ahu_on[a.id], o.oat, o.vfd)
            hvac_parts += [sig[f"{a.id}.kw"]]
            q_cool_total += sig[f"{a.id}.q"]
        local_q = np.zeros(o.t.size)
        local_heat = np.zeros(o.t.size)
        for z in self.zones:
            if z.ahu is None:
                lc, lh = zone_load[z.id]
                local_q += lc * z.area * P.local_cool_kw_m2
                local_heat += lh * z.area * P.local_heat_kw_m2
        if self.chillers:
            q_cool_total += local_q
            hvac_parts.append(local_q * P.fan_coil_fan_ratio)
        else:
            hvac_parts.append(local_q / P.split_cop)
        hvac_parts.append(local_heat / P.heat_pump_cop)
        if not self.chillers and self.ahus:
            hvac_parts.append(sum(sig[f"{a.id}.q"] for a in self.ahus) / P.dx_cop)  # packaged DX cooling
        plant_on = o.bldg_on | np.any(list(ahu_on.values()), axis=0) if self.ahus else o.bldg_on
        self._plant(sig, o.t, o.day, q_cool_total, plant_on, o.oat, o.vfd, hvac_parts)
        return hvac_parts

    def _lighting(self, sig: dict[str, np.ndarray], o: Output) -> tuple[np.ndarray, np.ndarray]:
        """Lighting circuits (office, extended, night) and plug loads; returns (lighting kW, plug kW)."""
        P = self.params
        led = self.retrofit_on("led_lighting", o.day)
        lpd = np.where(led, P.lpd_led_w_m2, P.lpd_w_m2)
        light_kw = np.zeros(o.t.size)
        dusk = 13.0 + (12.0 + 1.9 * np.cos(2 * np.pi * ((o.day % 365.2425) - 172.0 - 10957 % 365.2425) / 365.2425)) / 2
        for c in self.circuits:
            if c.mode == "night":
                lit = (o.hour >= dusk - 0.3 + c.offset_h) & (o.hour < 23.0)
            elif c.mode == "extended":
                lit = (o.open_day & (o.hour >= o.s - 1.0 + c.offset_h) & (o.hour < o.e + 1.0)) | (
                    o.occupied if self.b.use != "hotel" else o.open_day)
            else:
                lit = o.open_day & (o.hour >= o.s - 0.25 + c.offset_h) & (o.hour < o.e + 0.25)
            sig[c.key] = lit.astype(float)
            dim = np.where(led, 0.85 - 0.15 * o.solar, 0.95)
            light_kw += c.kw * lit * dim
        light_kw = (light_kw + 0.05) * lpd * 0.85 * self.area / 1000.0
        plug_kw = P.plug_w_m2 * 0.85 * self.area * (0.2 + 0.8 * o.occ) / 1000.0
        sig["_lights.on"] = (light_kw > 0.3 * lpd * 0.85 * self.area / 1000.0).astype(float)
        for e in self.kinds.get("lighting", []):
            keys = [c.key for c in self.circuits if c.key.startswith(f"{e.id}.")]
            sig[f"{e.id}.kw"] = light_kw * len(keys) / max(1, len(self.circuits))
            sig[f"{e.id}.on"] = np.max([sig[k] for k in keys], axis=0) if keys else sig["_lights.on"]
        return light_kw, plug_kw

    def _loads(self, sig: dict[str, np.ndarray], o: Output) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Lifts, garage, fans, water and its pumps, kitchen; returns (power-category kW, special kW)."""
        power_parts: list[np.ndarray] = []
        for lf in self.kinds.get("lift", []):
            kl = rand.key64(self.k, "lift", lf.id)
            p = 0.03 + 0.6 * o.occ * (0.7 + 0.3 * rand.uniform(kl, o.step_idx // 2))
            sig[f"{lf.id}.on"] = (rand.uniform(kl ^ 1, o.step_idx) < p + 0.05).astype(float)
            sig[f"{lf.id}.kw"] = 1.2 + 16.0 * p
            power_parts.append(sig[f"{lf.id}.kw"])
        if not self.kinds.get("lift") and self.b.floors_above >= 7:
            power_parts.append((1.2 + 16.0 * (0.03 + 0.6 * o.occ)) * max(2, self.b.floors_above // 8))
        self._garage(sig, o.t, o.hour, o.s, o.e, o.open_day, o.occ, o.oat, o.daily_mean, o.rh)
        for f in self.other_fans:
            m, _ = self.fault_mask(o.t, FaultKind.AFTER_HOURS_HVAC, (f"{self.id}/{f.id}",))
            fon = o.bldg_on | m
            spd = np.where(fon, np.where(o.vfd, 55.0 + 30.0 * o.occ, 100.0), 0.0)
            self._fan_signals(sig, f.id, fon, spd, max(2.0, 0.0004 * self.area))
            power_parts.append(sig[f"{f.id}.kw"])
        for f in self.garage_fans:
            power_parts.append(sig[f"{f.id}.kw"])
        power_parts += self._water(sig, o)
        return power_parts, self._kitchen(sig, o)

    def _water(self, sig: dict[str, np.ndarray], o: Output) -> list[np.ndarray]:
        """Water use (with leaks), smoke detectors and the water pumps; returns the pumps' kW."""
        water = 0.2 + 0.00025 * self.area * o.occ
        for lk in self._leak_points():
            m, f = self.fault_mask(o.t, FaultKind.WATER_LEAK, (lk,))
            water = water + m * (f.param("flow_m3h") if f else 0.0)
            sig[f"leak:{lk}"] = m.astype(float)
        for sm in self._points_of("Smoke_Detection_Sensor"):
            m, _ = self.fault_mask(o.t, FaultKind.SMOKE, (sm,))
            sig[f"smoke:{sm}"] = m.astype(float)
        sig["water.flow"] = water
        parts = []
        for pw in self.pumps_water:
            pon = rand.uniform(rand.key64(self.k, pw.id), o.step_idx) < 0.15 + 0.6 * o.occ
            self._pump_signals(sig, pw.id, pon, np.where(pon, 75.0, 0.0), max(1.5, 0.0002 * self.area), water)
            parts.append(sig[f"{pw.id}.kw"])
        if not self.pumps_water:
            parts.append(0.00015 * self.area * (0.3 + 0.7 * o.occ))
        return parts

    def _kitchen(self, sig: dict[str, np.ndarray], o: Output) -> list[np.ndarray]:
        """Kitchens (cooking peaks, combustible gas), gas use and the always-on special loads; returns kW."""
        cooking = np.where(o.open_day, np.exp(-(((o.hour - 11.5) / 0.9) ** 2))
                           + np.exp(-(((o.hour - 17.8) / 0.9) ** 2)), 0.0)
        special = [np.full(o.t.size, self.params.special_w_m2 * self.area / 1000.0)]  # data rooms, security, BMS
        gas = 0.05 + 1.5 * o.occ
        for kt in self.kinds.get("kitchen", []):
            m, f = self.fault_mask(o.t, FaultKind.GAS_LEAK, self._eq_targets(kt.id))
            lel = 0.4 + 1.5 * cooking + m * (f.param("lel") if f else 0.0) * np.clip(
                self.fault_elapsed_h(o.t, f) / 0.5, 0, 1)
            sig[f"{kt.id}.lel"] = lel
            sig[f"{kt.id}.t"] = 24.0 + 5.0 * cooking + 0.2 * (o.oat - 25.0)
            sig[f"{kt.id}.co"] = 1.0 + 4.0 * cooking
            sig[f"{kt.id}.kw"] = 6.0 + 30.0 * cooking
            special.append(sig[f"{kt.id}.kw"])
            gas = gas + 12.0 * cooking
        sig["gas.flow"] = gas
        return special

    def _zone_loop(self, teq: np.ndarray, on: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   eq: tuple[np.ndarray, ...], gain: tuple[np.ndarray, ...],
                   n_days: int) -> tuple[np.ndarray, ...]:
        """Zone temperature, then first-order states (CO2, moisture: equilibria ``eq``, per-step gains ``gain``),
        each output day simulated from WARM_DAYS before it.

        The HVAC closes ``hvac_pull`` of the gap to the comfort band per step, capped by its capacity
        (``hvac_max_k_per_h``): a warm-up after a cold night takes up to an hour, as in a real building.
        """
        P = self.params
        L = (WARM_DAYS + 1) * STEPS

        def rows(x: np.ndarray) -> np.ndarray:
            return sliding_window_view(x, L, axis=1)[:, ::STEPS][:, :n_days]  # (Z, n_days, L), no copy

        teq_r, on_r, lo_r, hi_r = (rows(x) for x in (teq, on, lo, hi))
        eq_r, gain_r = [rows(x) for x in eq], [rows(x) for x in gain]
        a = DT_H / P.zone_tau_h
        b = P.hvac_pull
        cap = P.hvac_max_k_per_h * DT_H
        T = teq_r[:, :, :STEPS].mean(axis=2)
        S = [e[:, :, :STEPS].mean(axis=2) for e in eq_r]
        Z = teq.shape[0]
        outs = [np.empty((Z, n_days, STEPS)) for _ in range(1 + len(eq))]
        first = L - STEPS
        for j in range(L):
            target = np.minimum(np.maximum(T, lo_r[:, :, j]), hi_r[:, :, j])
            T = T + a * (teq_r[:, :, j] - T) + on_r[:, :, j] * np.clip(b * (target - T), -cap, cap)
            S = [s + g[:, :, j] * (e[:, :, j] - s) for s, g, e in zip(S, gain_r, eq_r, strict=True)]
            if j >= first:
                for k, x in enumerate((T, *S)):
                    outs[k][:, :, j - first] = x
        return tuple(x.reshape(Z, -1) for x in outs)

    def _ahu(self, a: Equipment, sig: dict[str, np.ndarray], t: np.ndarray, on: np.ndarray, oat: np.ndarray,
             vfd: np.ndarray) -> None:
        zs = [z for z in self.zones if z.ahu == a.id] or self.zones
        zt = np.mean([sig[f"{z.id}.t"] for z in zs], axis=0)
        load = np.mean([sig[f"{z.id}.load"] for z in zs], axis=0)
        rat = zt + np.where(on, 0.6, 0.2)
        sat_sp = np.clip(19.0 - 0.3 * (oat - 10.0) - 3.0 * load, 12.8, 18.5)
        min_oa = 0.2
        econ = oat < sat_sp - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.clip((sat_sp - 1.0 - rat) / (oat - rat), min_oa, 1.0)
        oaf_cmd = np.where(econ, np.nan_to_num(frac, nan=min_oa), np.where(oat < rat - 1.5, 1.0, min_oa))
        targets = self._eq_targets(a.id)
        stuck, f_st = self.fault_mask(t, FaultKind.STUCK_OA_DAMPER, targets)
        oaf = np.where(stuck, (f_st.param("position") if f_st else 100.0) / 100.0, oaf_cmd)
        mat = np.where(on, oaf * oat + (1 - oaf) * rat, rat - 0.15 * (rat - oat))
        dtf = np.where(on, 1.0, 0.0)
        need = mat + dtf - sat_sp
        shc, f_sh = self.fault_mask(t, FaultKind.SIMULTANEOUS_HEAT_COOL, targets)
        forced = np.where(shc & on, (f_sh.param("heating") if f_sh else 60.0), 0.0)
        cc = np.where(on, np.clip((need + forced / 100.0 * 15.0) / 20.0, 0.0, 1.0) * 100.0, 0.0)
        hc = np.where(on, np.maximum(np.clip(-need / 15.0, 0.0, 1.0) * 100.0, forced), 0.0)
        sat = np.where(on, mat + dtf - cc / 100.0 * 20.0 + hc / 100.0 * 15.0, mat + 0.2)
        dsp_sp = 160.0 + 120.0 * load
        speed = np.where(on, np.where(vfd, 45.0 + 45.0 * load, 92.0), 0.0)
        dspf, f_d = self.fault_mask(t, FaultKind.DSP_NOT_MET, targets)
        dsp = np.where(on, dsp_sp * np.where(dspf, f_d.param("pressure") / 100.0 if f_d else 0.5, 1.0), 0.0)
        speed = np.where(dspf & on, 100.0, speed)
        flow = self.design_flow[a.id] * speed / 100.0
        kw = self.fan_kw[a.id] * ((speed / 100.0) ** 3 * 0.85 + 0.08) * on
        q = 1.2 * flow / 3600.0 * 1.006 * cc / 100.0 * 20.0 * 1.25
        qh = 1.2 * flow / 3600.0 * 1.006 * hc / 100.0 * 15.0
        co2 = np.mean([sig[f"{z.id}.co2"] for z in zs], axis=0)
        sig.update({f"{a.id}.sat": sat, f"{a.id}.mat": mat, f"{a.id}.rat": rat, f"{a.id}.oat": oat + 0.3,
                    f"{a.id}.sat_sp": sat_sp, f"{a.id}.dsp": dsp, f"{a.id}.dsp_sp": dsp_sp,
                    f"{a.id}.speed": speed, f"{a.id}.on": on.astype(float), f"{a.id}.cc": cc, f"{a.id}.hc": hc,
                    f"{a.id}.oad": oaf_cmd * 100.0 * on, f"{a.id}.flow": flow, f"{a.id}.kw": kw + qh / 2.8,
                    f"{a.id}.q": q, f"{a.id}.t": zt, f"{a.id}.co2": co2, f"{a.id}.sp": sig[f"{zs[0].id}.sp"],
                    f"{a.id}.rh": np.mean([sig[f"{z.id}.rh"] for z in zs], axis=0)})

    def _plant(self, sig: dict[str, np.ndarray], t: np.ndarray, day: np.ndarray, q: np.ndarray,
               plant_on: np.ndarray, oat: np.ndarray, vfd: np.ndarray, hvac_parts: list[np.ndarray]) -> None:
        n = len(self.chillers)
        cws = np.clip(26.5 + 0.45 * (oat - 28.0), 20.0, 33.0)
        sig["plant.cws"] = cws
        if n == 0:
            sig["plant.on"] = np.zeros(t.size)
            sig["plant.q"] = q
            return
        cap = self.chiller_cap
        n_run = np.where(plant_on & (q > 0.04 * cap), np.clip(np.ceil(q / (0.9 * cap)), 1, n), 0)
        plr = np.where(n_run > 0, np.clip(q / (np.maximum(n_run, 1) * cap), 0.0, 1.2), 0.0)
        cop_r = np.where(self.retrofit_on("chiller_upgrade", day), 6.2, 4.3)
        any_on = n_run > 0
        idle = np.clip(12.0 + 0.15 * (oat - 15.0), 9.0, 17.0)  # still water in a stopped evaporator
        chws = np.where(any_on, 7.0 + 0.4 * plr, idle)
        chwr = np.where(any_on, chws + 5.0 * plr, chws + 0.4)
        design_flow = cap / (4.186 * 5.0) * 3.6  # m3/h per chiller at 5 K
        pump_speed = np.where(any_on, np.where(vfd, np.clip(45.0 + 50.0 * plr, 45.0, 95.0), 100.0), 0.0)
        sig.update({"plant.on": any_on.astype(float), "plant.q": q, "plant.chws": chws, "plant.chwr": chwr,
                    "plant.plr": plr})
        for i, c in enumerate(self.chillers):
            on = n_run > i
            kw = on * cap / cop_r * (0.12 + 0.58 * plr + 0.30 * plr ** 2) * (1 + 0.025 * (cws - 30.0))
            qi = on * plr * cap
            with np.errstate(divide="ignore", invalid="ignore"):
                cop = np.where(kw > 0, qi / np.maximum(kw, 1e-9), 0.0)
            # each chiller's own leaving/entering water sensors: the header's water while it runs, its own
            # still evaporator water while it (and its dedicated pump) is stopped
            sig.update({f"{c.id}.on": on.astype(float), f"{c.id}.kw": kw, f"{c.id}.q": qi, f"{c.id}.cop": cop,
                        f"{c.id}.chws": np.where(on, chws, idle), f"{c.id}.chwr": np.where(on, chwr, idle + 0.4),
                        f"{c.id}.cws": cws,
                        f"{c.id}.flow": on * design_flow * pump_speed / 100.0})
            hvac_parts.append(kw)
        pumps = self.pumps_hvac
        for i, p in enumerate(pumps):
            fed = [f for f in p.feeds if f in {c.id for c in self.chillers}]
            pon = (np.max([sig[f"{f}.on"] for f in fed], axis=0) > 0.5) if fed else any_on
            if not fed and len(pumps) > 1:
                pon = n_run > (i % n)
            self._pump_signals(sig, p.id, pon, np.where(pon, pump_speed, 0.0), 0.02 * cap,
                               pon * design_flow * pump_speed / 100.0)
            hvac_parts.append(sig[f"{p.id}.kw"])
        if not pumps:
            hvac_parts.append(any_on * 0.02 * cap * n_run * ((pump_speed / 100.0) ** 3 * 0.9 + 0.05))
        for ct in self.kinds.get("cooling_tower", []):
            spd = np.where(any_on, np.clip(35.0 + 55.0 * plr * (0.6 + 0.4 * (cws - 20.0) / 13.0), 30, 100), 0.0)
            self._fan_signals(sig, ct.id, any_on, spd, 0.012 * cap * n)
            sig[f"{ct.id}.cws"] = cws
            hvac_parts.append(sig[f"{ct.id}.kw"])

    def _pump_signals(self, sig: dict[str, np.ndarray], pid: str, on: np.ndarray, speed: np.ndarray, rated: float,
                      flow: np.ndarray) -> None:
        sig.update({f"{pid}.on": on.astype(float), f"{pid}.speed": speed, f"{pid}.flow": flow * on,
                    f"{pid}.kw": rated * ((speed / 100.0) ** 3 * 0.9 + 0.05) * on})

    def _fan_signals(self, sig: dict[str, np.ndarray], fid: str, on: np.ndarray, speed: np.ndarray,
                     rated: float) -> None:
        sig.update({f"{fid}.on": on.astype(float), f"{fid}.speed": speed, f"{fid}.hz": speed / 2.0,
                    f"{fid}.kw": rated * ((speed / 100.0) ** 3 * 0.9 + 0.05) * on})

    def _garage(self, sig: dict[str, np.ndarray], t: np.ndarray, hour: np.ndarray, s: np.ndarray, e: np.ndarray,
                open_day: np.ndarray, occ: np.ndarray, oat: np.ndarray, daily_mean: np.ndarray,
                rh: np.ndarray) -> None:
        traffic = np.where(open_day, np.exp(-(((hour - s) / 0.6) ** 2)) + np.exp(-(((hour - e) / 0.6) ** 2)), 0.0)
        traffic = traffic + 0.15 * occ
        co_any = np.zeros(t.size)
        for g in self.kinds.get("garage", []):
            m, f = self.fault_mask(t, FaultKind.CO_GARAGE, self._eq_targets(g.id))
            rise = np.minimum(self.fault_elapsed_h(t, f) * (f.param("rise_per_h") if f else 0.0),
                              f.param("max") if f else 0.0)
            co = 1.5 + 10.0 * traffic + rise * m
            sig[f"{g.id}.co"] = co
            sig[f"{g.id}.t"] = 0.5 * (oat + daily_mean) + 2.0
            sig[f"{g.id}.co2"] = 450.0 + 300.0 * traffic
            sig[f"{g.id}.rh"] = rh
            co_any = np.maximum(co_any, co)
        for fan in self.garage_fans:
            level = fan.location or ""
            mine = [g for g in self.kinds.get("garage", []) if level and g.location == level]
            co = np.max([sig[f"{g.id}.co"] for g in mine], axis=0) if mine else co_any
            left_on, _ = self.fault_mask(t, FaultKind.AFTER_HOURS_HVAC, (f"{self.id}/{fan.id}",))
            fon = (co > 20.0) | (traffic > 0.5) | left_on
            spd = np.where(co > 35.0, 100.0, np.where(fon, 60.0, 0.0))
            self._fan_signals(sig, fan.id, fon, spd, max(3.0, 0.0002 * self.area))

    def _points_of(self, brick: str) -> list[str]:
        return [f"{self.id}/{p.id}" for e in self.bf.equipment for p in e.points if p.brick == brick]

    def _leak_points(self) -> list[str]:
        return self._points_of("Leak_Sensor")

    def _scale(self, sig: dict[str, np.ndarray], cat: dict[str, np.ndarray]) -> None:
        """Apply the site sizing: every power of a category (and chiller loads) scales with it."""
        f = {c: self.sizing.category[c] * self.sizing.total for c in CATEGORIES}
        for c in CATEGORIES:
            cat[c] = cat[c] * f[c]
        hv = f["hvac"]
        for name in list(sig):
            eq, _, what = name.partition(".")
            e = self.eq.get(eq)
            if e is None or what not in ("kw", "q", "flow"):
                continue
            if e.kind in ("ahu", "rtu", "chiller", "pump", "cooling_tower", "fcu"):
                sig[name] = sig[name] * hv
            elif e.kind in ("lighting",):
                sig[name] = sig[name] * f["lighting_sockets"]
            elif e.kind in ("lift", "fan"):
                sig[name] = sig[name] * f["power"]
            elif e.kind == "kitchen":
                sig[name] = sig[name] * f["special"]
        if "plant.q" in sig:
            sig["plant.q"] = sig["plant.q"] * hv

    def _meters(self, sig: dict[str, np.ndarray], t: np.ndarray, cat: dict[str, np.ndarray], oat: np.ndarray,
                daily_mean: np.ndarray, rh: np.ndarray) -> None:
        total = sum(cat.values()) * 1.01  # + distribution losses
        for c, v in cat.items():
            sig[f"cat.{c}"] = v
        sig["cat.total"] = total
        peak_total = self.sizing.peak_total or max(0.06 * self.area, 1.0)
        load_frac = np.clip(total / peak_total, 0, 1.2)
        sig["load_frac"] = load_frac
        shares = self.meter_shares()
        n = t.size
        for m, (source, share) in shares.items():
            kw = (sig[source] if source in sig else np.zeros(n)) * share
            self._electrical(sig, m, kw, t, load_frac)
        for wm in self.kinds.get("water_meter", []):
            sig[f"{wm.id}.flow"] = sig["water.flow"] / len(self.kinds["water_meter"])
        for gm in self.kinds.get("gas_meter", []):
            sig[f"{gm.id}.flow"] = sig["gas.flow"] / len(self.kinds["gas_meter"])
        # rooms
        for r in self.kinds.get("switch_room", []) + self.kinds.get("transformer", []):
            m, f = self.fault_mask(t, FaultKind.SWITCH_ROOM_OVERHEAT, self._eq_targets(r.id))
            base = 22.5 + 0.3 * (daily_mean - 18.0) + 0.08 * (oat - daily_mean) + 4.0 * load_frac
            if "transformer" in words(r.id, r.name) or r.kind == "transformer":
                base = base + 1.0
            rise = np.minimum(self.fault_elapsed_h(t, f) * (f.param("rise_per_h") if f else 0.0),
                              np.maximum((f.param("max") if f else 0.0) - base, 0.0)) * m
            sig[f"{r.id}.t"] = base + rise
            sig[f"{r.id}.rh"] = np.clip(55.0 + 0.3 * (rh - 75.0) - 1.0 * rise, 25.0, 80.0)
            sig[f"{r.id}.tt"] = base + rise + 14.0 + 30.0 * load_frac ** 2
        rooms = self.kinds.get("switch_room", [])
        room_t = sig[f"{rooms[0].id}.t"] if rooms else 24.0 + 4.0 * load_frac
        sig["building.tt"] = room_t + 14.0 + 30.0 * load_frac ** 2

    def meter_shares(self) -> dict[str, tuple[str, float]]:
        """Which signal each meter-like equipment measures, and what share of it."""
        out: dict[str, tuple[str, float]] = {}
        groups: dict[str, list[str]] = {}
        for e in self.bf.equipment:
            if e.kind not in ("meter", "transformer", "switch_room"):
                continue
            if e.kind != "meter" and not has_brick(e, ("Electric_Power_Sensor", "Active_Power_Sensor",
                                                       "Phase_Current_Sensor", "Current_Sensor",
                                                       "Phase_Voltage_Sensor", "Voltage_Sensor",
                                                       "Electric_Energy_Sensor", "Power_Factor_Sensor")):
                continue
            src = meter_category(e)
            groups.setdefault(src, []).append(e.id)
        for src, ids in groups.items():
            hints = {i: self.eq[i].points[0].sim.get("share") if self.eq[i].points else None for i in ids}
            w = {i: 0.6 + 0.8 * float(rand.uniform(rand.key64(self.k, "share", i), 0)) for i in ids}
            tot = sum(w.values())
            for i in ids:
                share = float(hints[i]) if hints[i] is not None else w[i] / tot
                sig = f"cat.{src}" if src in (*CATEGORIES, "total") else f"{src}.kw"
                out[i] = (sig, share)
        return out

    def _electrical(self, sig: dict[str, np.ndarray], m: str, kw: np.ndarray, t: np.ndarray,
                    load_frac: np.ndarray) -> None:
        km = rand.key64(self.k, "phase", m)
        u = rand.uniform(km, np.arange(6))
        v_base = V_PHASE + 3.0 * (1.0 - load_frac)
        m_ub, f_ub = self.fault_mask(t, FaultKind.VOLTAGE_UNBALANCE, self._eq_targets(m))
        drop = m_ub * (f_ub.param("drop") / 100.0 if f_ub else 0.0)  # the parameter is in percent
        pf = np.clip(0.85 + 0.1 * np.clip(load_frac, 0, 1) + (u[5] - 0.5) * 0.04, 0.8, 0.98)
        sig[f"{m}.kw"] = kw
        sig[f"{m}.pf"] = pf
        sig[f"{m}.hz"] = np.full(t.size, 50.0)
        for p in range(3):
            v = v_base * (1.0 + (u[p] - 0.5) * 0.006) * (1.0 - np.where(p == 1, drop, 0.0))
            sig[f"{m}.v{p + 1}"] = v
            ib = 1.0 + (u[3 + p] - 0.5) * 0.05 + np.where(p == 1, 6.0 * drop, -3.0 * drop)
            sig[f"{m}.i{p + 1}"] = kw * 1000.0 / (3.0 * V_PHASE * pf) * ib
        # today's peak 15-minute demand so far (a running max within each local day)
        days = kw.size // STEPS
        sig[f"{m}.peak"] = np.maximum.accumulate(kw.reshape(days, STEPS), axis=1).reshape(-1) if days else kw


def meter_category(e: Equipment) -> str:
    """What a meter-like equipment measures: a sub-item category, 'total', or the id of one equipment it feeds."""
    subs = {p.subitem for p in e.points if p.subitem}
    hint = next((p.sim.get("load") for p in e.points if p.sim.get("load")), None)
    if hint:
        return str(hint)
    if len(subs) == 1:
        return subs.pop()
    if subs:
        return "total"
    if e.kind == "meter" and len(e.feeds) == 1:
        return e.feeds[0]
    return "total"


def calibrate(bf: BuildingFile, seed: int, weather: Weather, year: int = 2025) -> Sizing:
    """Fit sub-item and total scale factors so that meters stay within range and breaker ratings.

    Runs the physics without faults and without the retrofit on the hottest days of ``year`` (and a cold one).
    """
    model = BuildingModel(bf, seed, weather, retrofit=False)
    off = model.off
    d0 = (dt.date(year, 1, 1) - dt.date(1970, 1, 1)).days
    t = np.arange(365) * DAY + d0 * DAY - off + 15 * 3600.0
    hot = np.argsort(weather.at(t).oat)
    days = [d0 + int(i) for i in (*hot[-6:], hot[0])]
    peaks = dict.fromkeys((*CATEGORIES, "total"), 0.0)
    for d in days:
        sig = model.run(d, 1)
        for c in CATEGORIES:
            peaks[c] = max(peaks[c], float(sig[f"cat.{c}"].max()))
        peaks["total"] = max(peaks["total"], float(sig["cat.total"].max()))
    caps: dict[str, float] = {}
    for e in bf.equipment:
        if e.kind != "meter":
            continue
        c = meter_category(e)
        cap = math.inf
        for p in e.points:
            if p.brick in ("Electric_Power_Sensor", "Active_Power_Sensor") and p.range:
                cap = min(cap, 0.8 * p.range[1])
        if e.breaker_rating_a:
            cap = min(cap, DESIGN_PEAK_OF_BREAKER * e.breaker_rating_a * 3 * V_PHASE * 0.9 / 1000.0)
        caps[c] = caps.get(c, 0.0) + cap if c in caps else cap
    sizing = Sizing()
    for c in CATEGORIES:
        if c in caps and peaks[c] > 0:
            sizing.category[c] = min(1.0, caps[c] / peaks[c])
    scaled_total = sum(peaks[c] * sizing.category[c] for c in CATEGORIES) * 1.01
    if "total" in caps and scaled_total > 0:
        sizing.total = min(1.0, caps["total"] / scaled_total)
    sizing.peak_total = scaled_total * sizing.total
    return sizing
