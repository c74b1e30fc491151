"""Read queries the dashboard, the API and the commands call: buildings of an owner, project status,
eligibility, payments, ranking. Each returns plain dicts / dataclasses (no ORM objects escape a session).

    from buildings.records import make_engine, session_factory
    from buildings.records import queries as q
    with session_factory(make_engine(url))() as s:
        q.buildings_for_owner(s, "yuxin-property")
        q.project_status(s, building_id="jiefangbei-tower")
        q.eligibility(s, "jiefangbei-tower", "CQ-YZ-OLDBLDG-SMART-DEMO").as_dict()
        q.payments(s, building_id="jiefangbei-tower")
        q.ranking(s)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from buildings.ownership import Choice, Matter, ShareRow, Vote, art278_vote_required, concentration, tally
from buildings.records.models import (
    Building,
    Owner,
    OwnershipShare,
    Payment,
    RetrofitProject,
    SavingsResult,
    SubsidyApplication,
    SubsidyPolicyRecord,
)
from buildings.retrofit import STAGE_LABELS, MilestoneState, Stage, progress
from buildings.subsidy.defaults import load_defaults
from buildings.subsidy.engine import Eligibility, Fact, ProjectInputs, evaluate
from buildings.subsidy.messages import Msg
from buildings.subsidy.policy import Policy
from buildings.subsidy.ranking import PriorityInput, rank
from buildings.subsidy.status import Verdict


def policies_from_db(s: Session) -> dict[str, Policy]:
    """The policies loaded into the records database (as validated at import)."""
    return {r.id: Policy.model_validate(r.body) for r in s.scalars(select(SubsidyPolicyRecord))}


def share_rows(s: Session, building_id: str) -> list[ShareRow]:
    rows = s.execute(select(OwnershipShare, Owner).join(Owner).where(OwnershipShare.building_id == building_id)
                     .order_by(OwnershipShare.area_m2.desc())).all()
    return [ShareRow(sh.owner_id, sh.area_m2, sh.count, o.name, o.kind) for sh, o in rows]


def buildings_for_owner(s: Session, owner_id: str) -> list[dict[str, Any]]:
    """The buildings an owner holds a share in, with its area and share of the exclusive area."""
    out = []
    for sh in s.scalars(select(OwnershipShare).where(OwnershipShare.owner_id == owner_id)):
        rows = share_rows(s, sh.building_id)
        total = sum(r.area_m2 for r in rows)
        b = sh.building
        out.append({"building_id": b.id, "name_zh": b.name_zh, "name_en": b.name_en, "area_m2": sh.area_m2,
                    "count": sh.count, "share": sh.area_m2 / total if total else None})
    return sorted(out, key=lambda d: d["building_id"])


def ownership(s: Session, building_id: str) -> dict[str, Any]:
    """Concentration measures and class of a building (thresholds from policy data)."""
    c = concentration(share_rows(s, building_id), load_defaults().thresholds)
    return {"building_id": building_id, **c.as_dict()}


def _project_for(s: Session, building_id: str, project_id: str | None = None) -> RetrofitProject | None:
    if project_id:
        return s.get(RetrofitProject, project_id)
    return s.scalars(select(RetrofitProject).where(RetrofitProject.building_id == building_id)
                     .order_by(RetrofitProject.created_at.desc(), RetrofitProject.id)).first()


def milestone_states(p: RetrofitProject) -> list[MilestoneState]:
    docs = frozenset(d.doc_type for d in p.documents)
    return [MilestoneState(Stage(m.stage), m.name, m.planned_date, m.actual_date, m.signed_off_by,
                           tuple(m.required_docs), docs) for m in p.milestones]


def vote_result(s: Session, p: RetrofitProject) -> dict[str, Any] | None:
    if not p.votes:
        return None
    votes = [Vote(v.owner_id, Choice(v.choice), v.count) for v in p.votes]
    return tally(share_rows(s, p.building_id), votes, Matter(p.votes[0].matter)).as_dict()


def project_status(s: Session, building_id: str | None = None, project_id: str | None = None) -> list[dict]:
    """Projects with stage, progress (from milestones), budget, measures, vote and applications."""
    q = select(RetrofitProject).order_by(RetrofitProject.building_id, RetrofitProject.id)
    if building_id:
        q = q.where(RetrofitProject.building_id == building_id)
    if project_id:
        q = q.where(RetrofitProject.id == project_id)
    out = []
    for p in s.scalars(q):
        pr = progress(milestone_states(p))
        owners = sum(r.count for r in share_rows(s, p.building_id))
        out.append({
            "project_id": p.id, "building_id": p.building_id, "name": p.name, **pr.as_dict(),
            "stage_label": STAGE_LABELS[pr.stage] if pr.stage else ("完成", "closed"),
            "budget": sum(m.capex for m in p.measures), "target_saving_pct": p.target_saving_pct,
            "expected_saving_kwh_a": sum(m.expected_saving_kwh_a or 0 for m in p.measures),
            "measures": [{"category": m.category, "capex": m.capex, "expected_saving_kwh_a": m.expected_saving_kwh_a,
                          "description": m.description} for m in p.measures],
            "milestones": [{"stage": m.stage, "name": m.name, "planned": _iso(m.planned_date),
                            "actual": _iso(m.actual_date), "signed_off_by": m.signed_off_by,
                            "required_docs": m.required_docs} for m in p.milestones],
            "documents": [{"type": d.doc_type, "title": d.title, "sha256": d.sha256} for d in p.documents],
            "vote_required": art278_vote_required(owners, p.scope_common_parts),
            "vote": vote_result(s, p),
            "applications": [{"id": a.id, "policy_id": a.policy_id, "status": a.status,
                              "assessed_amount": a.assessed_amount,
                              "paid": sum(x.amount for x in a.payments)} for a in p.applications],
        })
    return out


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def _months(a: dt.date, b: dt.date) -> float:
    return max((b - a).days, 0) / 30.4375


def facts(s: Session, building_id: str, project: RetrofitProject | None, as_of: dt.date,
          extra: Mapping[str, Fact] | None = None) -> dict[str, Fact]:
    """Every fact the policies may test, each with its evidence."""
    b = s.get(Building, building_id)
    if b is None:
        raise KeyError(f"unknown building {building_id!r}; run `retrofit program import` first")
    rows = share_rows(s, building_id)
    f = _building_facts(b, as_of)
    f.update(_ownership_facts(b, rows))
    f.update(_applicant_facts(s, project, rows))
    if project is not None:
        f.update(_project_facts(s, project, rows, as_of))
    f.update(extra or {})
    return f


def _building_facts(b: Building, as_of: dt.date) -> dict[str, Fact]:
    """The building's own record: place, age, area, use, metering."""
    d = load_defaults()
    src = Msg("ev.building_record", {"building": b.id})
    f: dict[str, Fact] = {
        "building.district_code": Fact(b.district_code, src),
        "building.country": Fact(b.country, src),
        "building.use": Fact(b.use, src),
        "building.use_type_public": Fact(True, Msg("ev.use_public", {"building": b.id, "use": b.use})),
        "building.year_built": Fact(b.year_built, src),
        "building.age_years": Fact(as_of.year - b.year_built, Msg("ev.building_age", {
            "building": b.id, "year": b.year_built, "as_of": as_of})),
        "building.gross_floor_area_m2": Fact(b.gross_floor_area_m2, src),
        "city.is_key_city": Fact(any(b.district_code.startswith(p) for p in d.key_cities.prefixes),
                                 Msg("ev.key_city", {"code": b.district_code, "prefixes": d.key_cities.prefixes})),
        "building.monitoring.has_submetering": Fact(b.has_submetering, Msg("ev.site_submetering")),
        "building.monitoring.platform_connected_since": Fact(
            b.platform_connected_since, Msg("ev.platform_date")),
        "building.ownership.unified_operator_id": Fact(b.unified_operator_id, Msg("ev.programme_record")),
    }
    if b.platform_connected_since:
        f["building.monitoring.months_reporting"] = Fact(
            round(_months(b.platform_connected_since, as_of), 1),
            Msg("ev.months_reporting", {"since": b.platform_connected_since, "as_of": as_of}))
    return f


def _ownership_facts(b: Building, rows: list[ShareRow]) -> dict[str, Fact]:
    """Ownership concentration of the building (thresholds from policy data)."""
    if not rows:
        return {}
    c = concentration(rows, load_defaults().thresholds)
    ev = Msg("ev.ownership", {"building": b.id, "rows": len(rows), "owners": c.owner_count})
    return {"building.ownership.owner_count": Fact(c.owner_count, ev),
            "building.ownership.structure_class": Fact(c.structure_class.value, ev),
            "building.ownership.top_share": Fact(c.top_share, ev),
            "building.ownership.top3_share": Fact(c.top3_share, ev),
            "building.ownership.hhi": Fact(c.hhi, ev)}


def _applicant_facts(s: Session, project: RetrofitProject | None, rows: list[ShareRow]) -> dict[str, Fact]:
    """The applicant: the project's, else the largest owner."""
    applicant = None
    if project is not None and project.applicant_owner_id:
        applicant = s.get(Owner, project.applicant_owner_id)
    elif rows:
        applicant = s.get(Owner, rows[0].owner)
    if applicant is None:
        return {}
    ev = Msg("ev.owner", {"owner": applicant.id})
    return {"owner.kind": Fact(applicant.kind, ev), "owner.is_sme": Fact(applicant.is_sme, ev)}


def _project_facts(s: Session, project: RetrofitProject, rows: list[ShareRow], as_of: dt.date) -> dict[str, Fact]:
    """The project: area, targets, measures, other funding, the owners' vote, works and measured savings."""
    pid = {"project": project.id}
    pe = Msg("ev.project", pid)
    owners = sum(r.count for r in rows)
    f = {
        "project.retrofit_area_m2": Fact(project.retrofit_area_m2, pe),
        "project.targets.energy_saving_pct": Fact(project.target_saving_pct, Msg("ev.project_target", pid)),
        "project.measure_categories": Fact(sorted({m.category for m in project.measures}),
                                           Msg("ev.project_measures", pid)),
        "project.other_subsidies": Fact(list(project.other_subsidies), Msg("ev.project_other_funding", pid)),
        "project.listed_in_policies": Fact(list(project.listed_in_policies), pe),
        "project.vote_required": Fact(art278_vote_required(owners, project.scope_common_parts),
                                      Msg("ev.vote_required", {"owners": owners,
                                                               "common": project.scope_common_parts})),
    }
    vr = vote_result(s, project)
    if vr is not None:
        ve = Msg("ev.votes", {"n": len(project.votes), "date": project.votes[0].meeting_date,
                              "approved": vr["approved"], "area": vr["area_approval"],
                              "head": vr["headcount_approval"]})
        f["project.vote_passed"] = Fact(vr["approved"], ve)
        f["project.governance_approval.area_approval_pct"] = Fact(vr["area_approval"], ve)
        f["project.governance_approval.headcount_approval_pct"] = Fact(vr["headcount_approval"], ve)
    f.update(_works_facts(project, as_of))
    f.update(_savings_facts(s, project, as_of))
    return f


def _works_facts(project: RetrofitProject, as_of: dt.date) -> dict[str, Fact]:
    """Whether construction started, and whether the first application came before it."""
    starts = [m.actual_date for m in project.milestones if m.stage == Stage.CONSTRUCTION and m.actual_date]
    first_works = min(starts) if starts else None
    f = {"project.construction_started": Fact(first_works is not None and first_works <= as_of,
                                              Msg("ev.construction", {"project": project.id}))}
    subs = [a.submitted_on for a in project.applications if a.submitted_on]
    if subs:
        before = first_works is None or min(subs) < first_works
        f["application.submitted_before_works"] = Fact(before, Msg(
            "ev.first_application", {"applied": min(subs), "works": first_works}) if first_works else
            Msg("ev.first_application_no_works", {"applied": min(subs)}))
    return f


def _savings_facts(s: Session, project: RetrofitProject, as_of: dt.date) -> dict[str, Fact]:
    """The newest measured savings (IPMVP option C) known on ``as_of``."""
    sv = latest_savings(s, project.building_id, project.id, as_of)
    if sv is None:
        return {}
    ev = Msg("ev.savings", {"model": sv.model_kind, "b0": sv.baseline_from, "b1": sv.baseline_to,
                            "r0": sv.reporting_from, "r1": sv.reporting_to, "cv": sv.cv_rmse, "fsu": sv.fsu68,
                            "source": sv.source})
    return {"savings.measured_pct": Fact(sv.savings_fraction, ev), "savings.adequate": Fact(sv.adequate, ev)}


def latest_savings(s: Session, building_id: str, project_id: str | None = None,
                   as_of: dt.date | None = None) -> SavingsResult | None:
    """The newest measured-savings result of a building (of its project, or building-wide) known on ``as_of``."""
    q = select(SavingsResult).where(SavingsResult.building_id == building_id)
    if as_of is not None:
        q = q.where(SavingsResult.reporting_to <= as_of)
    if project_id:
        q = q.where((SavingsResult.project_id == project_id) | (SavingsResult.project_id.is_(None)))
    return s.scalars(q.order_by(SavingsResult.reporting_to.desc(), SavingsResult.id.desc())).first()


def project_inputs(s: Session, project: RetrofitProject | None, policy_id: str | None = None,
                   as_of: dt.date | None = None) -> ProjectInputs:
    if project is None:
        return ProjectInputs(project_id=None, retrofit_area_m2=None)
    sv = latest_savings(s, project.building_id, project.id, as_of)
    measured = sv.savings_fraction if sv is not None and sv.adequate else None
    app = next((a for a in project.applications if a.policy_id == policy_id), None)
    paid: dict[int, float] = {}
    for x in app.payments if app else []:
        paid[x.tranche_seq] = paid.get(x.tranche_seq, 0.0) + x.amount
    other = 0.0
    if project.applicant_owner_id and policy_id:
        q = (select(SubsidyApplication).join(RetrofitProject)
             .where(RetrofitProject.applicant_owner_id == project.applicant_owner_id,
                    SubsidyApplication.policy_id == policy_id, RetrofitProject.id != project.id))
        other = sum(a.assessed_amount or 0.0 for a in s.scalars(q))
    return ProjectInputs(
        project_id=project.id, retrofit_area_m2=project.retrofit_area_m2, verified_area_m2=project.verified_area_m2,
        measures=[(m.category, m.capex) for m in project.measures], target_saving=project.target_saving_pct,
        measured_saving=measured, rating=project.rating_target, milestones=milestone_states(project),
        docs_on_file=frozenset(d.doc_type for d in project.documents), paid_by_seq=paid, owner_other_assessed=other)


def eligibility(s: Session, building_id: str, policy_id: str, project_id: str | None = None,
                as_of: dt.date | None = None, policies: Mapping[str, Policy] | None = None,
                extra_facts: Mapping[str, Fact] | None = None) -> Eligibility:
    """Eligibility of a building (its latest project, or the one named) under a policy."""
    pols = dict(policies) if policies is not None else policies_from_db(s)
    if policy_id not in pols:
        raise KeyError(f"unknown policy {policy_id!r}; known: {', '.join(sorted(pols))}")
    as_of = as_of or dt.date.today()
    proj = _project_for(s, building_id, project_id)
    return evaluate(pols[policy_id], building_id, facts(s, building_id, proj, as_of, extra_facts),
                    project_inputs(s, proj, policy_id, as_of), pols, as_of)


def eligibility_for_application(s: Session, app: SubsidyApplication, policies: Mapping[str, Policy] | None = None,
                                as_of: dt.date | None = None) -> tuple[Eligibility, Policy]:
    pols = dict(policies) if policies is not None else policies_from_db(s)
    if app.policy_id not in pols:
        raise KeyError(f"application {app.id} names unknown policy {app.policy_id!r}")
    e = eligibility(s, app.project.building_id, app.policy_id, app.project_id, as_of, pols)
    return e, pols[app.policy_id]


def eligibility_matrix(s: Session, as_of: dt.date | None = None) -> list[dict[str, Any]]:
    """Every building x every policy: verdict, estimated amount, what is missing."""
    pols = policies_from_db(s)
    out = []
    for b in s.scalars(select(Building).order_by(Building.id)):
        for pid in sorted(pols):
            e = eligibility(s, b.id, pid, as_of=as_of, policies=pols)
            out.append({"building_id": b.id, "policy_id": pid, "verdict": e.verdict,
                        "amount": e.amount.capped, "currency": e.amount.currency, "final": e.amount.final,
                        "missing": e.missing})
    return out


def payments(s: Session, building_id: str | None = None, policy_id: str | None = None) -> list[dict[str, Any]]:
    """Payments made, newest first, with their application, policy, project and building."""
    q = (select(Payment, SubsidyApplication, RetrofitProject).join(SubsidyApplication,
                                                                   Payment.application_id == SubsidyApplication.id)
         .join(RetrofitProject, SubsidyApplication.project_id == RetrofitProject.id))
    if building_id:
        q = q.where(RetrofitProject.building_id == building_id)
    if policy_id:
        q = q.where(SubsidyApplication.policy_id == policy_id)
    return [{"payment_id": p.id, "application_id": a.id, "policy_id": a.policy_id, "project_id": r.id,
             "building_id": r.building_id, "tranche": p.tranche_seq, "amount": p.amount,
             "paid_on": p.paid_on.isoformat()}
            for p, a, r in s.execute(q.order_by(Payment.paid_on.desc(), Payment.id.desc()))]


def ranking(s: Session, as_of: dt.date | None = None,
            eui_override: Mapping[str, tuple[float, str]] | None = None) -> list[dict[str, Any]]:
    """Retrofit priority of every building (EUI vs GB/T 51161, concentration, age, savings, subsidy).

    ``eui_override`` maps building id -> (EUI kWh/m2a, evidence), e.g. measured from telemetry."""
    as_of = as_of or dt.date.today()
    pols = policies_from_db(s)
    d = load_defaults()
    items = []
    for b in s.scalars(select(Building).order_by(Building.id)):
        proj = _project_for(s, b.id)
        verdicts = [eligibility(s, b.id, pid, as_of=as_of, policies=pols) for pid in pols]
        order = {Verdict.ELIGIBLE: 0, Verdict.NOT_YET: 1, Verdict.NOT_ELIGIBLE: 2}
        best = min(verdicts, key=lambda e: order[e.verdict]) if verdicts else None
        amounts = [e.amount.capped for e in verdicts if e.verdict is not Verdict.NOT_ELIGIBLE and e.amount.capped]
        rows = share_rows(s, b.id)
        cls = concentration(rows, d.thresholds).structure_class.value if rows else "fragmented"
        eui, ev = (eui_override or {}).get(b.id, (b.baseline_eui_kwh_m2a, b.eui_source or "programme record"))
        items.append(PriorityInput(
            building_id=b.id, name=b.name_zh, year_built=b.year_built, gross_floor_area_m2=b.gross_floor_area_m2,
            use=b.use, gbt51161_class=b.gbt51161_class, eui_kwh_m2a=eui, eui_evidence=ev, structure_class=cls,
            expected_saving=proj.target_saving_pct if proj else None,
            best_verdict=best.verdict if best else None, subsidy_estimate=max(amounts) if amounts else None))
    out = []
    for p in rank(items, d, as_of.year):
        item = next(i for i in items if i.building_id == p.building_id)
        out.append({**p.as_dict(), "structure_class": item.structure_class, "eui_kwh_m2a": item.eui_kwh_m2a,
                    "best_verdict": item.best_verdict, "subsidy_estimate": item.subsidy_estimate})
    return out
