"""The read model of the retrofit programme, for the dashboard's pages and the API: projects with their
milestone timeline, each building's stage and subsidy state, the recorded measured savings, every policy's
eligibility with its evidence, and the district's priority ranking.

Everything goes through a Scope (insight.scope), so an owner only ever sees its own buildings; everything comes
back as frozen dataclasses with the StrEnum vocabulary of buildings.subsidy.status.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buildings.access import Can, Unavailable
from buildings.subsidy.messages import Msg, Todo
from buildings.subsidy.status import ConditionStatus, Verdict

if TYPE_CHECKING:  # pragma: no cover
    from insight.scope import Scope

DONE_STAGES = ("mv", "subsidy_claim", "payment", "closed")  # past construction: no longer in the ranking


@dataclass(frozen=True)
class Names:
    """A label in both languages."""

    zh: str
    en: str


@dataclass(frozen=True)
class MilestoneSpan:
    """One milestone as a bar of the timeline: from the previous milestone's date to its own."""

    name: Names
    stage: Names
    start: str | None
    end: str | None
    done: bool


@dataclass(frozen=True)
class MeasureView:
    name: Names
    cost: float | None
    category: str = "other"  # buildings.retrofit.MEASURE_CATEGORIES


@dataclass(frozen=True)
class DocumentView:
    name: str
    type: str
    sha256: str  # the first 12 hex digits


@dataclass(frozen=True)
class ProjectView:
    """A retrofit project as the retrofit and programme pages show it."""

    id: str
    building: str
    name: Names
    stage: Names
    budget: float
    progress: float
    paid: float
    savings_kwh: float | None  # the newest recorded measured savings of the building
    measures: tuple[MeasureView, ...]
    milestones: tuple[MilestoneSpan, ...]
    documents: tuple[DocumentView, ...]


@dataclass(frozen=True)
class BuildingRecordStatus:
    """A building's latest project stage and its subsidy applications' state, for the portfolio list."""

    stage: Names
    subsidy: Names
    applications: tuple[str, ...] = ()  # the applications' states (draft, submitted, partially_paid...)
    paid: float = 0.0


@dataclass(frozen=True)
class RecordedSavings:
    """The newest measured-savings result recorded for a building (`retrofit savings --record`)."""

    fraction: float
    avoided_kwh: float
    model: str
    cv_rmse: float
    adequate: bool
    source: str
    baseline: tuple[dt.date, dt.date]
    reporting: tuple[dt.date, dt.date]


@dataclass(frozen=True)
class ConditionView:
    """One eligibility condition with its status and evidence."""

    field: str
    op: str
    negated: bool
    label: Names
    status: ConditionStatus
    expected: Any  # the policy's value: a number, date, string, list or bool
    actual: Any  # the building's fact, None when unknown
    evidence: str  # in plain English
    evidence_msg: Msg | None = None  # the same as a message key with parameters, for the reader's language


@dataclass(frozen=True)
class PolicyAssessment:
    """One policy for one building: verdict, amounts, conditions, what is missing."""

    policy_id: str
    policy: Names
    verdict: Verdict
    estimated: float | None
    paid: float
    conditions: tuple[ConditionView, ...]
    missing: tuple[str, ...]  # in plain English
    todo: tuple[Todo, ...] = ()  # what is missing as to-dos: what to do, who acts, where the evidence is

    @property
    def eligible(self) -> bool:
        return self.verdict is Verdict.ELIGIBLE


@dataclass(frozen=True)
class RankingRow:
    """A building in the district's retrofit priority list."""

    rank: int
    building_id: str
    score: float
    eui_kwh_m2a: float | None
    structure_class: str
    best_verdict: Verdict | None
    subsidy_estimate: float | None
    notes: tuple[str, ...]  # in plain English
    reasons: tuple[Msg, ...] = ()  # the notes as message keys with parameters
    eui_evidence: str = ""  # where the EUI comes from (the record's own text)


APPLICATION_ZH = {"draft": "草稿", "submitted": "已申报", "approved": "已批准", "rejected": "未通过",
                  "paid": "已拨付", "partially_paid": "部分拨付", "withdrawn": "已撤回"}


def project_rows(sc: Scope, building: str | None = None) -> list[dict[str, Any]]:
    """The records' project rows (buildings.records.queries.project_status) of the visible buildings, or of
    one: the API serves them as they are."""
    from buildings.records import queries as q

    if building is not None:
        sc.check(building)
    ids = [building] if building else list(sc.building_ids)
    with sc.records() as s:
        return [p for bid in ids for p in q.project_status(s, building_id=bid)]


def records_status(sc: Scope) -> dict[str, BuildingRecordStatus]:
    """Per visible building: its latest project's stage and its subsidy applications' state."""
    out: dict[str, BuildingRecordStatus] = {}
    for p in project_rows(sc):
        apps = p["applications"]
        paid = sum(a["paid"] or 0 for a in apps)
        states = sorted({a["status"] for a in apps})
        sub_en = (", ".join(states) + (f" (paid {paid:,.0f})" if paid else "")) if apps else "none"
        sub_zh = (", ".join(APPLICATION_ZH.get(x, x) for x in states) + (f"（已拨付 {paid:,.0f}）" if paid else "")
                  if apps else "无")
        out[p["building_id"]] = BuildingRecordStatus(Names(*p["stage_label"]), Names(sub_zh, sub_en),
                                                     tuple(states), paid)
    return out


def _spans(milestones: list[dict[str, Any]]) -> tuple[MilestoneSpan, ...]:
    """Milestones in date order, each bar from the previous milestone's date to its own."""
    from buildings.retrofit import STAGE_LABELS, Stage

    spans, prev = [], None
    for m in sorted(milestones, key=lambda m: m["planned"] or m["actual"] or ""):
        end = m["actual"] or m["planned"]
        spans.append(MilestoneSpan(Names(m["name"], m["name"]), Names(*STAGE_LABELS[Stage(m["stage"])]),
                                   prev or end, end, m["actual"] is not None))
        prev = end
    return tuple(spans)


def projects(sc: Scope) -> list[ProjectView]:
    """Retrofit projects of the visible buildings, with their timeline and the recorded savings."""
    from buildings.records import queries as q

    sc.require(Can.RECORDS)
    with sc.records() as s:
        savings = {bid: q.latest_savings(s, bid) for bid in sc.building_ids}
    out = []
    for p in project_rows(sc):
        sv = savings.get(p["building_id"])
        out.append(ProjectView(
            id=p["project_id"], building=p["building_id"], name=Names(p["name"], p["name"]),
            stage=Names(*p["stage_label"]), budget=p["budget"], progress=float(p.get("progress") or 0.0),
            paid=sum(a["paid"] or 0 for a in p["applications"]),
            savings_kwh=sv.avoided_kwh if sv is not None else None,
            measures=tuple(MeasureView(Names(m["description"] or m["category"], m["description"] or m["category"]),
                                       m["capex"], m["category"]) for m in p["measures"]),
            milestones=_spans(p["milestones"]),
            documents=tuple(DocumentView(d["title"], d["type"], (d["sha256"] or "")[:12]) for d in p["documents"])))
    return out


def recorded_savings(sc: Scope, building_id: str) -> RecordedSavings | None:
    """The newest measured-savings result recorded for a building, or None."""
    from buildings.records import queries as q

    sc.check(building_id)
    with sc.records() as s:
        r = q.latest_savings(s, building_id)
        if r is None:
            return None
        return RecordedSavings(r.savings_fraction, r.avoided_kwh, r.model_kind, r.cv_rmse, r.adequate, r.source,
                               (r.baseline_from, r.baseline_to), (r.reporting_from, r.reporting_to))


def subsidies(sc: Scope, building_id: str) -> list[PolicyAssessment]:
    """Every policy's eligibility for one building: conditions with evidence, amounts, what is missing."""
    from buildings.records import queries as q

    sc.require(Can.RECORDS)
    sc.check(building_id)
    out = []
    with sc.records() as s:
        pols = q.policies_from_db(s)
        paid_by_policy: dict[str, float] = {}
        for pay in q.payments(s, building_id=building_id):
            paid_by_policy[pay["policy_id"]] = paid_by_policy.get(pay["policy_id"], 0.0) + pay["amount"]
        for pid, pol in sorted(pols.items()):
            try:
                e = q.eligibility(s, building_id, pid, policies=pols)
            except KeyError as exc:
                raise Unavailable(f"retrofit records ({exc})") from None
            conds = tuple(ConditionView(c.field, c.op, c.negated, Names(sc.fact_label(c.field, 0),
                                                                        sc.fact_label(c.field, 1)),
                                        ConditionStatus(c.status), c.expected, c.actual, c.evidence,
                                        c.evidence_msg)
                          for c in e.conditions)
            out.append(PolicyAssessment(pid, Names(pol.name, pol.name_en or pol.name), Verdict(e.verdict),
                                        e.amount.capped, paid_by_policy.get(pid, 0.0), conds, tuple(e.missing),
                                        tuple(e.todo)))
    return out


def ranking(sc: Scope) -> list[RankingRow]:
    """Priority of the district's buildings that have no project past construction yet."""
    from buildings.records import queries as q

    sc.require(Can.PROGRAMME)
    done = {p["building_id"] for p in project_rows(sc) if p.get("stage") in DONE_STAGES}
    with sc.records() as s:
        rows = q.ranking(s)
    return [RankingRow(r["rank"], r["building_id"], r["score"], r["eui_kwh_m2a"], r["structure_class"],
                       Verdict(r["best_verdict"]) if r["best_verdict"] else None, r["subsidy_estimate"],
                       tuple(r["notes"]), tuple(Msg(m["key"], m["args"]) for m in r.get("reasons", ())),
                       r.get("eui_evidence", ""))
            for r in rows if r["building_id"] not in done and sc.allows(r["building_id"])]
