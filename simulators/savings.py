"""True savings of a simulated retrofit: the same building, weather and occupancy, with and without it.

The measured-savings code (IPMVP option C on metered data) can be checked against these numbers: they are
what the retrofit really avoided in the physics, not an estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from buildings.site import Site
from simulators.physics import CATEGORIES, DT_H, BuildingModel, calibrate
from simulators.weather import Weather


@dataclass(frozen=True)
class TrueSavings:
    """Energy of one building over a period with and without its retrofit (kWh at the main meter)."""

    building: str
    start: float
    end: float
    baseline_kwh: float  # without the retrofit (what the old building would have used)
    actual_kwh: float  # with the retrofit as the site file declares it
    by_category: dict[str, float]  # avoided kWh per sub-item

    @property
    def avoided_kwh(self) -> float:
        return self.baseline_kwh - self.actual_kwh

    @property
    def fraction(self) -> float:
        return self.avoided_kwh / self.baseline_kwh if self.baseline_kwh > 0 else 0.0

    def as_dict(self) -> dict:
        return {"building": self.building, "start": self.start, "end": self.end,
                "baseline_kwh": round(self.baseline_kwh, 1), "actual_kwh": round(self.actual_kwh, 1),
                "avoided_kwh": round(self.avoided_kwh, 1), "fraction": round(self.fraction, 4),
                "by_category": {k: round(v, 1) for k, v in self.by_category.items()}}


def _energy(model: BuildingModel, start: float, end: float) -> dict[str, float]:
    d0, d1 = model.day_of(start), model.day_of(end - 1e-6)
    out = dict.fromkeys((*CATEGORIES, "total"), 0.0)
    for a in range(d0, d1 + 1, 60):
        n = min(60, d1 + 1 - a)
        sig = model.run(a, n)
        t = sig["t"]
        mask = (t >= start) & (t < end)
        for c in (*CATEGORIES, "total"):
            out[c] += float(np.sum(sig[f"cat.{c}"][mask])) * DT_H
    return out


def true_savings(site: Site, building_id: str, start: float, end: float, seed: int = 0) -> TrueSavings:
    """Avoided energy of a building's retrofit over [start, end) (UTC epoch s), run with and without it."""
    bf = site.building(building_id)
    weather = Weather(seed)
    sizing = calibrate(bf, seed, weather)
    with_r = _energy(BuildingModel(bf, seed, weather, retrofit=True, sizing=sizing), start, end)
    without = _energy(BuildingModel(bf, seed, weather, retrofit=False, sizing=sizing), start, end)
    by_cat = {c: without[c] - with_r[c] for c in CATEGORIES}
    return TrueSavings(building=building_id, start=start, end=end, baseline_kwh=without["total"],
                       actual_kwh=with_r["total"], by_category=by_cat)


def savings_fraction(site: Site, building_id: str, start: float, end: float, seed: int = 0) -> float:
    """Just the savings fraction (0.18 = 18 % less energy than without the retrofit)."""
    s = true_savings(site, building_id, start, end, seed)
    return 0.0 if math.isnan(s.fraction) else s.fraction
