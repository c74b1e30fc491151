"""Measured savings, IPMVP option C: a change-point baseline on outdoor temperature, checked against ASHRAE
Guideline 14, applied to the reporting period.

Pure numpy/scipy on daily arrays (energy per day, mean outdoor temperature per day, working-day flag). Pulling
those arrays from the telemetry store is the command module's job (``retrofit/cmd_program.py``), because
``buildings`` must not import ``telemetry``.

Models (ASHRAE RP-1050 inverse-model names), each with an additive working-day term when the flags vary:
  2P   E = a + b*T
  3PH  E = a + bh*(Th - T)+            (heating: energy rises as it gets colder)
  3PC  E = a + bc*(T - Tc)+            (cooling: energy rises as it gets warmer)
  4P   E = a + b1*(Tcp - T)+ + b2*(T - Tcp)+
  5P   E = a + bh*(Th - T)+ + bc*(T - Tc)+ ,  Th <= Tc (flat dead band between)
Change points: a grid search solved by linear least squares at each grid point (numpy), refined by
``scipy.optimize.least_squares``. The model with the lowest BIC among those with physical slopes wins.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from buildings.subsidy.messages import Msg

MODEL_KINDS = ("2P", "3PH", "3PC", "4P", "5P")

# ASHRAE Guideline 14 goodness-of-fit limits (CV(RMSE), |NMBE|) by data resolution. G14 states monthly and
# hourly limits; daily data is held to the hourly (sub-monthly) limits.
G14_LIMITS: dict[str, tuple[float, float]] = {
    "monthly": (0.15, 0.05),
    "daily": (0.30, 0.10),
    "hourly": (0.30, 0.10),
}
# G14 whole-building compliance: savings uncertainty below 50 % of the savings at 68 % confidence.
FSU_LIMIT = 0.50
MIN_BASELINE_DAYS = 365  # IPMVP: at least one full operating cycle (12 months)
MIN_COVERAGE = 0.90  # share of days in the period that must have both energy and temperature (CalTRACK)
MIN_TEMP_RANGE_K = 8.0  # a baseline that never saw a season cannot learn a temperature response


class BaselineError(ValueError):
    """The baseline cannot be used; ``reason`` says why and what to do (too short, too noisy, gaps...)."""

    def __init__(self, reason: str | Msg, stats: dict[str, float] | None = None) -> None:
        self.msg = reason if isinstance(reason, Msg) else None  # for the reader's language (dashboard)
        self.reason = str(reason)
        self.stats = stats or {}
        super().__init__(self.reason)


@dataclass(frozen=True)
class DailySeries:
    """Aligned daily arrays: date, energy (kWh/day), mean outdoor temperature (degC), and an occupancy term:
    a working-day flag (1/0) or the day's occupied hours (better when weekends run shorter hours)."""

    dates: np.ndarray  # datetime64[D]
    energy: np.ndarray
    temp: np.ndarray
    workday: np.ndarray  # occupancy term: 1/0 working-day flags, or occupied hours of the day

    @classmethod
    def of(cls, dates: Sequence[dt.date] | np.ndarray, energy: Sequence[float] | np.ndarray,
           temp: Sequence[float] | np.ndarray, workday: Sequence[float] | np.ndarray | None = None) -> DailySeries:
        d = np.asarray(dates, dtype="datetime64[D]")
        e = np.asarray(energy, dtype=float)
        t = np.asarray(temp, dtype=float)
        w = np.ones(len(d)) if workday is None else np.asarray(workday, dtype=float)
        if not (len(d) == len(e) == len(t) == len(w)):
            raise ValueError(f"dates, energy, temperature and workday differ in length: "
                             f"{len(d)}, {len(e)}, {len(t)}, {len(w)}")
        return cls(d, e, t, w)

    def valid(self) -> DailySeries:
        """Only days with finite, non-negative energy and a finite temperature."""
        ok = np.isfinite(self.energy) & np.isfinite(self.temp) & (self.energy >= 0)
        return DailySeries(self.dates[ok], self.energy[ok], self.temp[ok], self.workday[ok])

    def __len__(self) -> int:
        return len(self.dates)


@dataclass(frozen=True)
class ChangePointModel:
    """A fitted change-point model; ``coef`` follows the design matrix columns of ``kind``."""

    kind: str
    change_points: tuple[float, ...]
    coef: tuple[float, ...]
    use_workday: bool

    def design(self, temp: np.ndarray, workday: np.ndarray) -> np.ndarray:
        return _design(self.kind, self.change_points, temp, workday, self.use_workday)

    def predict(self, temp: np.ndarray, workday: np.ndarray) -> np.ndarray:
        return self.design(np.asarray(temp, float), np.asarray(workday, float)) @ np.asarray(self.coef)

    @property
    def n_params(self) -> int:
        """Coefficients plus change points: what the fit spent its degrees of freedom on."""
        return len(self.coef) + len(self.change_points)

    def describe(self) -> dict[str, float | str]:
        """Named parameters, for reports."""
        names = {"2P": ["intercept", "slope"], "3PH": ["intercept", "heating_slope"],
                 "3PC": ["intercept", "cooling_slope"], "4P": ["intercept", "slope_below", "slope_above"],
                 "5P": ["intercept", "heating_slope", "cooling_slope"]}[self.kind]
        if self.use_workday:
            names = [*names, "occupancy_coef"]  # kWh per working day (1/0 flags) or per occupied hour
        out: dict[str, float | str] = {"kind": self.kind}
        out.update({n: round(float(c), 6) for n, c in zip(names, self.coef, strict=True)})
        cp_names = {"3PH": ["heating_change_point"], "3PC": ["cooling_change_point"], "4P": ["change_point"],
                    "5P": ["heating_change_point", "cooling_change_point"]}.get(self.kind, [])
        out.update({n: round(float(c), 3) for n, c in zip(cp_names, self.change_points, strict=True)})
        return out


def _design(kind: str, cps: tuple[float, ...], t: np.ndarray, w: np.ndarray, use_workday: bool) -> np.ndarray:
    cols = [np.ones_like(t)]
    if kind == "2P":
        cols.append(t)
    elif kind == "3PH":
        cols.append(np.maximum(cps[0] - t, 0.0))
    elif kind == "3PC":
        cols.append(np.maximum(t - cps[0], 0.0))
    elif kind == "4P":
        cols += [np.maximum(cps[0] - t, 0.0), np.maximum(t - cps[0], 0.0)]
    elif kind == "5P":
        cols += [np.maximum(cps[0] - t, 0.0), np.maximum(t - cps[1], 0.0)]
    else:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    if use_workday:
        cols.append(np.asarray(w, dtype=float))
    return np.column_stack(cols)


def _physical(kind: str, coef: np.ndarray) -> bool:
    """Hinge slopes must point the physical way (heating and cooling both add energy)."""
    if kind in ("3PH", "3PC"):
        return coef[1] >= 0
    if kind == "5P":
        return coef[1] >= 0 and coef[2] >= 0
    return True


@dataclass(frozen=True)
class FitStats:
    """Goodness of fit of a baseline (ASHRAE Guideline 14 definitions, n - p in the denominators)."""

    n: int
    p: int
    r2: float
    rmse: float
    cv_rmse: float
    nmbe: float
    autocorr: float  # lag-1 autocorrelation of residuals
    mean: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in self.__dict__.items()}


def fit_stats(y: np.ndarray, yhat: np.ndarray, p: int) -> FitStats:
    n = len(y)
    resid = y - yhat
    dof = max(n - p, 1)
    mean = float(np.mean(y))
    sse = float(resid @ resid)
    sst = float(((y - mean) ** 2).sum())
    rmse = math.sqrt(sse / dof)
    rho = float(np.corrcoef(resid[:-1], resid[1:])[0, 1]) if n > 2 and np.std(resid) > 0 else 0.0
    return FitStats(n=n, p=p, r2=1 - sse / sst if sst > 0 else 0.0, rmse=rmse,
                    cv_rmse=rmse / mean if mean else math.inf,
                    nmbe=float(resid.sum()) / (dof * mean) if mean else math.inf,
                    autocorr=0.0 if math.isnan(rho) else rho, mean=mean)


def _lstsq(kind: str, cps: tuple[float, ...], t: np.ndarray, w: np.ndarray, y: np.ndarray,
           use_w: bool) -> tuple[float, np.ndarray]:
    x = _design(kind, cps, t, w, use_w)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    r = y - x @ coef
    return float(r @ r), coef


def fit_kind(kind: str, s: DailySeries, grid_steps: int = 40) -> ChangePointModel | None:
    """Best model of one kind: grid search of change points with linear least squares, then a scipy refine."""
    t, w, y = s.temp, s.workday, s.energy
    use_w = bool(np.ptp(w) > 0)
    lo, hi = np.percentile(t, [5, 95])
    grid = np.linspace(lo, hi, grid_steps)
    best: tuple[float, tuple[float, ...], np.ndarray] | None = None
    if kind == "2P":
        candidates: list[tuple[float, ...]] = [()]
    elif kind == "5P":
        candidates = [(a, b) for i, a in enumerate(grid) for b in grid[i + 1:]]
    else:
        candidates = [(c,) for c in grid]
    for cps in candidates:
        sse, coef = _lstsq(kind, cps, t, w, y, use_w)
        if _physical(kind, coef) and (best is None or sse < best[0]):
            best = (sse, cps, coef)
    if best is None:
        return None
    sse0, cps0, coef0 = best
    if cps0:
        # Refine change points continuously; inner coefficients stay the linear least-squares optimum.
        def resid(cp: np.ndarray) -> np.ndarray:
            c = tuple(sorted(cp))
            x = _design(kind, c, t, w, use_w)
            coef, *_ = np.linalg.lstsq(x, y, rcond=None)
            return y - x @ coef

        try:
            res = optimize.least_squares(resid, np.array(cps0), bounds=(lo, hi), diff_step=1e-3)
            cps1 = tuple(float(c) for c in sorted(res.x))
            sse1, coef1 = _lstsq(kind, cps1, t, w, y, use_w)
            if sse1 < sse0 and _physical(kind, coef1):
                sse0, cps0, coef0 = sse1, cps1, coef1
        except (ValueError, np.linalg.LinAlgError):
            pass
    return ChangePointModel(kind, tuple(float(c) for c in cps0), tuple(float(c) for c in coef0), use_w)


def _bic(s: DailySeries, m: ChangePointModel) -> float:
    r = s.energy - m.predict(s.temp, s.workday)
    sse = max(float(r @ r), 1e-12)
    n = len(s)
    return n * math.log(sse / n) + m.n_params * math.log(n)


@dataclass(frozen=True)
class Baseline:
    """A fitted, checked baseline model with its Guideline 14 verdict."""

    model: ChangePointModel
    stats: FitStats
    resolution: str
    period: tuple[str, str]
    days: int
    coverage: float
    temp_range: tuple[float, float]
    candidates: dict[str, float] = field(default_factory=dict)  # kind -> BIC (lower is better)

    @property
    def limits(self) -> tuple[float, float]:
        return G14_LIMITS[self.resolution]

    @property
    def meets_g14(self) -> bool:
        cv, nmbe = self.limits
        return self.stats.cv_rmse <= cv and abs(self.stats.nmbe) <= nmbe

    def as_dict(self) -> dict:
        cv, nmbe = self.limits
        return {"model": self.model.describe(), "stats": self.stats.as_dict(), "resolution": self.resolution,
                "g14_limits": {"cv_rmse": cv, "nmbe": nmbe}, "meets_g14": self.meets_g14,
                "period": list(self.period), "days": self.days, "coverage": round(self.coverage, 4),
                "temp_range": [round(x, 2) for x in self.temp_range],
                "candidates_bic": {k: round(v, 2) for k, v in self.candidates.items()}}


def _period(s: DailySeries, period: tuple[dt.date, dt.date] | None) -> tuple[dt.date, dt.date, int]:
    """(first, last, days inclusive) of the requested period, or of the data."""
    if period is not None:
        first, last = period
    else:
        first, last = s.dates.min().astype(dt.date), s.dates.max().astype(dt.date)
    return first, last, (last - first).days + 1


def fit_baseline(series: DailySeries, period: tuple[dt.date, dt.date] | None = None, resolution: str = "daily",
                 min_days: int = MIN_BASELINE_DAYS, min_coverage: float = MIN_COVERAGE,
                 kinds: Sequence[str] = MODEL_KINDS) -> Baseline:
    """Fit every model kind, pick the lowest BIC, and check sufficiency and Guideline 14.

    Raises BaselineError when the baseline is too short, has too many gaps, never saw a temperature range,
    or fits too poorly (CV(RMSE) or NMBE beyond the Guideline 14 limit for the resolution).
    """
    if resolution not in G14_LIMITS:
        raise ValueError(f"unknown resolution {resolution!r}; known: {', '.join(G14_LIMITS)}")
    s = series.valid()
    if len(s) == 0:
        raise BaselineError(Msg("savings.no_baseline_days"))
    first, last, span = _period(series, period)
    if span < min_days:
        raise BaselineError(Msg("savings.too_short", {"days": span, "first": first, "last": last,
                                                      "min_days": min_days}), {"days": span})
    coverage = len(s) / span
    if coverage < min_coverage:
        raise BaselineError(Msg("savings.gaps", {"have": len(s), "span": span, "coverage": coverage,
                                                 "min": min_coverage}), {"coverage": coverage})
    t_lo, t_hi = float(s.temp.min()), float(s.temp.max())
    if t_hi - t_lo < MIN_TEMP_RANGE_K:
        raise BaselineError(Msg("savings.temp_range", {"range": t_hi - t_lo, "min": MIN_TEMP_RANGE_K}),
                            {"temp_range": t_hi - t_lo})
    fits = {k: m for k in kinds if (m := fit_kind(k, s)) is not None}
    bics = {k: _bic(s, m) for k, m in fits.items()}
    kind = min(bics, key=bics.__getitem__)
    model = fits[kind]
    st = fit_stats(s.energy, model.predict(s.temp, s.workday), model.n_params)
    base = Baseline(model=model, stats=st, resolution=resolution, period=(str(first), str(last)), days=span,
                    coverage=coverage, temp_range=(t_lo, t_hi), candidates=bics)
    if not base.meets_g14:
        cv_lim, nmbe_lim = base.limits
        raise BaselineError(
            f"baseline too noisy for a {resolution} model: CV(RMSE) {st.cv_rmse:.1%} (limit {cv_lim:.0%}), "
            f"NMBE {st.nmbe:.2%} (limit {nmbe_lim:.0%}) with the best model {kind}; ASHRAE Guideline 14 does not "
            f"accept it. Look for non-routine events or meter faults in the baseline, or use a different period.",
            {"cv_rmse": st.cv_rmse, "nmbe": st.nmbe},
        )
    return base


def fsu_a(resolution: str, months: float) -> float:
    """The empirical 'a' factor of Guideline 14 Annex B (values as used by nmecr)."""
    if resolution == "daily":
        return -0.00024 * months**2 + 0.03535 * months + 1.00286
    if resolution == "monthly":
        return -0.00022 * months**2 + 0.03306 * months + 0.94054
    return 1.26


@dataclass(frozen=True)
class SavingsResult:
    """Avoided energy over the reporting period and how sure we are of it."""

    baseline: Baseline
    reporting_period: tuple[str, str]
    reporting_days: int
    predicted_kwh: float  # the adjusted baseline: what the building would have used without the retrofit
    actual_kwh: float
    avoided_kwh: float
    savings_fraction: float
    fsu: dict[str, float]  # confidence ("68", "90") -> fractional savings uncertainty
    warnings: list[str]

    @property
    def adequate(self) -> bool:
        """Good enough to decide a subsidy: Guideline 14 fit and FSU < 50 % at 68 % confidence."""
        return self.baseline.meets_g14 and self.fsu["68"] < FSU_LIMIT and self.avoided_kwh > 0

    @property
    def verdict(self) -> str:
        if not self.baseline.meets_g14:
            return "baseline fails ASHRAE Guideline 14"
        if self.avoided_kwh <= 0:
            return "no savings measured"
        if self.fsu["68"] >= FSU_LIMIT:
            return f"savings uncertain: FSU {self.fsu['68']:.0%} at 68 % >= {FSU_LIMIT:.0%}"
        return "adequate to decide a subsidy (Guideline 14 fit, FSU < 50 % at 68 %)"

    def as_dict(self) -> dict:
        return {"baseline": self.baseline.as_dict(), "reporting_period": list(self.reporting_period),
                "reporting_days": self.reporting_days, "predicted_kwh": round(self.predicted_kwh, 1),
                "actual_kwh": round(self.actual_kwh, 1), "avoided_kwh": round(self.avoided_kwh, 1),
                "savings_pct": round(100 * self.savings_fraction, 2),
                "fsu_pct": {k: round(100 * v, 2) for k, v in self.fsu.items()},
                "adequate": self.adequate, "verdict": self.verdict, "warnings": self.warnings}


def fractional_savings_uncertainty(baseline: Baseline, savings_fraction: float, m: int,
                                   confidence: float) -> float:
    """Guideline 14 Annex B (Reddy & Claridge 2000), with the autocorrelation correction n' = n(1-rho)/(1+rho)."""
    if savings_fraction <= 0 or m <= 0:
        return math.inf
    st = baseline.stats
    n = st.n
    rho = max(st.autocorr, 0.0)
    n_eff = max(n * (1 - rho) / (1 + rho), st.p + 1.0)
    t = float(stats.t.ppf(0.5 + confidence / 2, max(n - st.p, 1)))
    a = fsu_a(baseline.resolution, n / 30.4 if baseline.resolution == "daily" else n)
    return t * a * st.cv_rmse / savings_fraction * math.sqrt((n / n_eff) * (1 + 2 / n_eff) * (1 / m))


def measure_savings(baseline: Baseline, reporting: DailySeries,
                    period: tuple[dt.date, dt.date] | None = None,
                    min_coverage: float = MIN_COVERAGE) -> SavingsResult:
    """Apply the baseline to the reporting period: avoided energy = predicted - actual (IPMVP routine adjustment)."""
    s = reporting.valid()
    if len(s) == 0:
        raise BaselineError(Msg("savings.no_reporting_days"))
    first, last, span = _period(reporting, period)
    if str(first) <= baseline.period[1]:
        raise BaselineError(f"the reporting period starts {first}, inside the baseline ({baseline.period[0]} to "
                            f"{baseline.period[1]}); it must start after the baseline ends")
    warnings: list[str] = []
    if len(s) / span < min_coverage:
        warnings.append(f"reporting period has gaps: {len(s)} of {span} days with data; savings cover those days")
    lo, hi = baseline.temp_range
    outside = int(((s.temp < lo - 2) | (s.temp > hi + 2)).sum())
    if outside:
        warnings.append(f"{outside} reporting days are more than 2 K outside the baseline's temperature range "
                        f"{lo:.1f}..{hi:.1f} degC: the model extrapolates there")
    pred = baseline.model.predict(s.temp, s.workday)
    predicted, actual = float(pred.sum()), float(s.energy.sum())
    avoided = predicted - actual
    frac = avoided / predicted if predicted > 0 else 0.0
    fsu = {f"{int(c * 100)}": fractional_savings_uncertainty(baseline, frac, len(s), c) for c in (0.68, 0.90)}
    return SavingsResult(baseline=baseline, reporting_period=(str(first), str(last)), reporting_days=span,
                         predicted_kwh=predicted, actual_kwh=actual, avoided_kwh=avoided, savings_fraction=frac,
                         fsu=fsu, warnings=warnings)


def workday_flags(dates: Sequence[dt.date] | np.ndarray, holidays: Sequence[dt.date] = (),
                  workdays: Sequence[int] = (0, 1, 2, 3, 4)) -> np.ndarray:
    """Working-day flags (1.0/0.0): weekday in ``workdays`` (Mon=0) and not a holiday."""
    d = np.asarray(dates, dtype="datetime64[D]")
    weekday = (d.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday (3)
    hol = np.asarray(list(holidays), dtype="datetime64[D]")
    return (np.isin(weekday, list(workdays)) & ~np.isin(d, hol)).astype(float)
