"""Retrofit priority of the district's buildings: energy use intensity against GB/T 51161, ownership
concentration, age, expected savings and subsidy available, weighted by policy data (_defaults.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from buildings.subsidy.defaults import Defaults
from buildings.subsidy.messages import Msg
from buildings.subsidy.status import Verdict


@dataclass(frozen=True)
class PriorityInput:
    building_id: str
    name: str
    year_built: int
    gross_floor_area_m2: float
    use: str
    gbt51161_class: str | None
    eui_kwh_m2a: float | None
    eui_evidence: str
    structure_class: str
    expected_saving: float | None  # planned saving fraction of the building's project
    best_verdict: str | None  # eligible / not_yet / not_eligible over the policies
    subsidy_estimate: float | None


@dataclass
class Priority:
    building_id: str
    name: str
    score: float
    rank: int = 0
    components: dict[str, float | None] = field(default_factory=dict)
    reasons: list[Msg] = field(default_factory=list)
    evidence: str = ""  # where the EUI comes from (a record's own text)

    @property
    def notes(self) -> list[str]:
        """The reasons in plain English (CLI), with the EUI's source after the EUI reason."""
        return [f"{m} ({self.evidence})" if m.key == "rank.eui" else str(m) for m in self.reasons]

    def as_dict(self) -> dict:
        return {"rank": self.rank, "building_id": self.building_id, "name": self.name,
                "score": round(self.score, 4),
                "components": {k: None if v is None else round(v, 4) for k, v in self.components.items()},
                "notes": self.notes, "reasons": [m.as_dict() for m in self.reasons], "eui_evidence": self.evidence}


def _clip(x: float) -> float:
    return max(0.0, min(1.0, x))


def rank(items: list[PriorityInput], defaults: Defaults, year: int) -> list[Priority]:
    """Score each building 0..1 (weighted components, a missing component scores 0 and says so) and rank."""
    r, g = defaults.ranking, defaults.gbt51161
    out = []
    for it in items:
        notes: list[Msg] = []
        cls = it.gbt51161_class or g.default_class_by_use.get(it.use)
        lim = g.limits(cls)
        eui: float | None = None
        if it.eui_kwh_m2a is None:
            notes.append(Msg("rank.no_eui"))
        elif lim is None:
            notes.append(Msg("rank.no_gbt", {"use": it.use}))
        else:
            constraint, leading = lim
            eui = _clip((it.eui_kwh_m2a - leading) / (constraint - leading))
            band = "above" if it.eui_kwh_m2a > constraint else "between" if it.eui_kwh_m2a > leading else "below"
            notes.append(Msg("rank.eui", {"eui": it.eui_kwh_m2a, "cls": cls, "constraint": constraint,
                                          "leading": leading, "band": band}))
        conc = r.concentration_scores.get(it.structure_class, 0.0)
        age = _clip((year - it.year_built) / r.age_full_years)
        sav = None if it.expected_saving is None else _clip(it.expected_saving / r.savings_full)
        if sav is None:
            notes.append(Msg("rank.no_target"))
        sub = {Verdict.ELIGIBLE: 1.0, Verdict.NOT_YET: 0.5}.get(it.best_verdict or "", 0.0)
        comps = {"eui": eui, "concentration": conc, "age": age, "expected_savings": sav, "subsidy": sub}
        score = sum(r.weights.get(k, 0) * (v or 0.0) for k, v in comps.items())
        out.append(Priority(it.building_id, it.name, score, components=comps, reasons=notes,
                            evidence=it.eui_evidence))
    out.sort(key=lambda p: (-p.score, p.building_id))
    for i, p in enumerate(out, start=1):
        p.rank = i
    return out
