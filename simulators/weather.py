"""A seeded, plausible Chongqing outdoor weather year, as a pure function of time.

Chongqing (29.6 N, 106.5 E, UTC+8 with solar noon near 13:00): hot humid summers with afternoon highs of
33-35 C and heat waves reaching 38-40 C in late July and August, mild cloudy winters around 5-10 C with a small
daily range, humidity around 70-85 % all year, lowest in summer afternoons. The model adds a seasonal cycle,
synoptic anomalies of a few days, occasional summer heat waves, a daily cycle whose amplitude grows on clear
days, and cloudiness. Every value is a deterministic function of (seed, time), so the live simulator and the
history generator agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators import rand

DAY = 86400.0
TZ_OFFSET_S = 8 * 3600.0  # Chongqing local time (no DST)


@dataclass(frozen=True, slots=True)
class WeatherSample:
    """Outdoor conditions on a time grid (arrays of the grid's shape)."""

    oat: np.ndarray  # outdoor air temperature, degC
    rh: np.ndarray  # outdoor relative humidity, %RH
    solar: np.ndarray  # 0..1, fraction of a clear-sky noon sun
    daily_mean: np.ndarray  # the day's mean temperature, degC (drives seasonal setpoints)


class Weather:
    """Outdoor weather for one site; the same for every building of the site (they share a city)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self._k = [rand.key64("weather", seed, i) for i in range(6)]

    def _parts(self, t: np.ndarray) -> tuple[np.ndarray, ...]:
        local = t + TZ_OFFSET_S
        days = local / DAY
        hour = (local % DAY) / 3600.0
        doy = (days - 10957.0) % 365.2425  # days since 2000-01-01 local, folded into a year
        season = np.cos(2 * np.pi * (doy - 205.0) / 365.2425)  # +1 late July, -1 mid January
        summer = np.clip(season, 0.0, None)
        mean = 18.6 + 10.3 * season
        synoptic = 2.2 * rand.smooth(self._k[0], days / 3.0) + 0.9 * rand.smooth(self._k[1], days / 1.1)
        heatwave = 5.0 * np.clip(rand.smooth(self._k[2], days / 8.0), 0.0, None) ** 0.7 * summer ** 3
        clear = np.clip(0.5 + 0.6 * rand.smooth(self._k[3], days / 1.7), 0.0, 1.0) * (0.55 + 0.45 * summer)
        return days, hour, doy, mean + synoptic + heatwave, clear, summer

    def at(self, t: np.ndarray | float) -> WeatherSample:
        """Weather at UTC epoch seconds ``t`` (any shape)."""
        t = np.asarray(t, dtype=np.float64)
        days, hour, doy, daymean, clear, summer = self._parts(t)
        amp = (2.4 + 2.4 * summer) * (0.6 + 0.6 * clear)
        shape = np.cos(2 * np.pi * (hour - 15.0) / 24.0)
        oat = daymean + amp * shape
        day_len = 12.0 + 1.9 * np.cos(2 * np.pi * (doy - 172.0) / 365.2425)
        rise = 13.0 - day_len / 2
        sun = np.clip(np.sin(np.pi * (hour - rise) / day_len), 0.0, None) * ((hour > rise) & (hour < rise + day_len))
        solar = sun * (0.25 + 0.75 * clear)
        base_rh = 76.0 + 5.0 * np.cos(2 * np.pi * (doy - 330.0) / 365.2425)
        rh = base_rh - 3.2 * (oat - daymean) + 7.0 * rand.smooth(self._k[4], days / 2.3) - 6.0 * clear * summer
        return WeatherSample(oat=oat, rh=np.clip(rh, 32.0, 99.0), solar=solar, daily_mean=daymean)
