"""Change-point baselines on synthetic series with known parameters (IPMVP option C, Guideline 14)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from buildings.savings import (
    BaselineError,
    DailySeries,
    fit_baseline,
    fit_kind,
    measure_savings,
    workday_flags,
)

START = dt.date(2025, 1, 1)


def _days(n: int, start: dt.date = START) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def _temps(dates: list[dt.date], seed: int = 1) -> np.ndarray:
    """A Chongqing-like year: 8 degC in January, 30 degC in late July, plus weather noise."""
    rng = np.random.default_rng(seed)
    doy = np.array([d.timetuple().tm_yday for d in dates])
    return 19 - 11 * np.cos(2 * np.pi * (doy - 15) / 365) + rng.normal(0, 2.0, len(dates))


def _energy(t: np.ndarray, w: np.ndarray, kind: str, noise: float, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = 2000 + 1500 * w
    if kind == "5P":
        e = base + 120 * np.maximum(14 - t, 0) + 180 * np.maximum(t - 22, 0)
    elif kind == "3PC":
        e = base + 200 * np.maximum(t - 18, 0)
    elif kind == "3PH":
        e = base + 150 * np.maximum(16 - t, 0)
    else:
        e = base + 50 * t
    return e * (1 + rng.normal(0, noise, len(t)))


@pytest.mark.parametrize("kind,cps", [("5P", (14, 22)), ("3PC", (18,)), ("3PH", (16,)), ("2P", ())])
def test_recovers_model_kind_and_change_points(kind: str, cps: tuple[float, ...]) -> None:
    dates = _days(365)
    t, w = _temps(dates), workday_flags(dates)
    s = DailySeries.of(dates, _energy(t, w, kind, 0.02), t, w)
    base = fit_baseline(s)
    assert base.model.kind == kind, base.candidates
    for got, want in zip(base.model.change_points, cps, strict=True):
        assert abs(got - want) < 1.0
    assert base.model.use_workday
    d = base.model.describe()
    assert abs(d["occupancy_coef"] - 1500) < 60
    assert base.stats.cv_rmse < 0.05 and abs(base.stats.nmbe) < 0.001
    assert base.meets_g14


def test_4p_fit_and_unphysical_3p_discarded() -> None:
    dates = _days(365)
    t, w = _temps(dates), workday_flags(dates)
    y = 3000 + 40 * np.maximum(17 - t, 0) + 220 * np.maximum(t - 17, 0)
    m = fit_kind("4P", DailySeries.of(dates, y, t, w))
    assert m is not None and abs(m.change_points[0] - 17) < 0.3
    # a purely decreasing series has no physical cooling hinge: 3PC must not bend the wrong way
    m3 = fit_kind("3PC", DailySeries.of(dates, 5000 - 50 * t, t, w))
    assert m3 is None or m3.coef[1] >= 0


def test_savings_of_known_retrofit_and_uncertainty() -> None:
    dates = _days(365 + 180)
    t, w = _temps(dates), workday_flags(dates)
    e = _energy(t, w, "5P", 0.03)
    e[365:] *= 0.85  # a retrofit that saves exactly 15 %
    base = fit_baseline(DailySeries.of(dates[:365], e[:365], t[:365], w[:365]))
    res = measure_savings(base, DailySeries.of(dates[365:], e[365:], t[365:], w[365:]))
    assert abs(res.savings_fraction - 0.15) < 0.01
    assert res.avoided_kwh > 0 and res.fsu["68"] < res.fsu["90"] < 0.5
    assert res.adequate
    out = res.as_dict()
    assert out["baseline"]["meets_g14"] and "cv_rmse" in out["baseline"]["stats"]


def test_too_short_baseline_refused() -> None:
    dates = _days(200)
    t, w = _temps(dates), workday_flags(dates)
    with pytest.raises(BaselineError, match="too short: 200 days"):
        fit_baseline(DailySeries.of(dates, _energy(t, w, "5P", 0.02), t, w))


def test_too_noisy_baseline_refused() -> None:
    dates = _days(365)
    t, w = _temps(dates), workday_flags(dates)
    with pytest.raises(BaselineError, match="too noisy") as info:
        fit_baseline(DailySeries.of(dates, _energy(t, w, "5P", 0.45), t, w))
    assert info.value.stats["cv_rmse"] > 0.30


def test_gappy_baseline_refused() -> None:
    dates = _days(365)
    t, w = _temps(dates), workday_flags(dates)
    e = _energy(t, w, "5P", 0.02)
    e[::5] = np.nan  # 20 % of days missing
    with pytest.raises(BaselineError, match="too many gaps"):
        fit_baseline(DailySeries.of(dates, e, t, w))


def test_small_savings_are_flagged_uncertain() -> None:
    dates = _days(365 + 60)
    t, w = _temps(dates), workday_flags(dates)
    e = _energy(t, w, "5P", 0.12)
    e[365:] *= 0.99
    base = fit_baseline(DailySeries.of(dates[:365], e[:365], t[:365], w[:365]))
    res = measure_savings(base, DailySeries.of(dates[365:], e[365:], t[365:], w[365:]))
    assert not res.adequate and "uncertain" in res.verdict or res.avoided_kwh <= 0


def test_workday_flags_holidays() -> None:
    f = workday_flags([dt.date(2026, 10, 1), dt.date(2026, 10, 3), dt.date(2026, 10, 5)],
                      holidays=[dt.date(2026, 10, 1)])
    assert f.tolist() == [0.0, 0.0, 1.0]  # holiday Thursday, Saturday, Monday
