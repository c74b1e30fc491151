"""Load the portfolio and the retrofit programme into the records database, change it, and export it.

Sources: the site files (buildings and their owners), a programme YAML (projects, measures, milestones,
documents, votes, applications, payments, measured-savings results; see buildings/program/yuzhong.yaml) and the
policy folder. Every write runs in one transaction and leaves an audit row per change; any error (a bad
share, a milestone out of order, a payment beyond the cap, a malformed file) rolls everything back.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from buildings.ownership import OwnershipError, ShareRow, validate_shares
from buildings.records.base import write_lock
from buildings.records.models import (
    AuditLog,
    Building,
    Document,
    Measure,
    Milestone,
    Owner,
    OwnershipShare,
    OwnerVote,
    Payment,
    RetrofitProject,
    SavingsResult,
    SubsidyApplication,
    SubsidyPolicyRecord,
)
from buildings.retrofit import DOC_TYPES, MEASURE_CATEGORIES, STAGE_DOCS, MilestoneError, Stage, check_completion
from buildings.site import Problem, Site
from buildings.strict import StrictMutable
from buildings.subsidy.policy import Policy
from buildings.yamlfile import line_of, plain, read_tree, validation_problems

PROGRAM_DIR = Path(__file__).resolve().parent.parent / "program"


class ProgramError(ValueError):
    """Programme data that cannot be written; nothing was changed. Carries file/line/field problems if known."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message if not self.problems else "\n".join(str(p) for p in self.problems))


class PaymentError(ProgramError):
    """A payment the policy does not allow (beyond the cap, tranche not due, unknown application)."""


# --- the programme file -----------------------------------------------------------------------------


class BuildingExtra(StrictMutable):
    gbt51161_class: str | None = None
    baseline_eui_kwh_m2a: float | None = Field(default=None, gt=0)
    eui_source: str | None = None
    has_owners_assembly: bool = False
    platform_connected_since: dt.date | None = None
    unified_operator_id: str | None = None
    country: str = "CN"


class OwnerExtra(StrictMutable):
    is_sme: bool | None = None
    credit_code: str | None = None


class MeasureIn(StrictMutable):
    category: str
    description: str = ""
    capex: float = Field(ge=0)
    expected_saving_kwh_a: float | None = Field(default=None, ge=0)

    @field_validator("category")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in MEASURE_CATEGORIES:
            raise ValueError(f"unknown measure category {v!r}; known: {', '.join(sorted(MEASURE_CATEGORIES))}")
        return v


class MilestoneIn(StrictMutable):
    stage: Stage
    name: str
    planned: dt.date | None = None
    actual: dt.date | None = None
    signed_off_by: str | None = None
    required_docs: list[str] | None = None  # default: the stage's standard documents

    @field_validator("required_docs")
    @classmethod
    def _docs(cls, v: list[str] | None) -> list[str] | None:
        bad = [d for d in v or [] if d not in DOC_TYPES]
        if bad:
            raise ValueError(f"unknown document type(s) {bad}; known: {', '.join(sorted(DOC_TYPES))}")
        return v


class DocumentIn(StrictMutable):
    type: str
    title: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    milestone: str | None = None
    uri: str | None = None
    signed_by: str | None = None
    signed_at: dt.datetime | None = None
    visibility: Literal["public", "government", "parties_only"] = "parties_only"

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DOC_TYPES:
            raise ValueError(f"unknown document type {v!r}; known: {', '.join(sorted(DOC_TYPES))}")
        return v


class VoteIn(StrictMutable):
    owner: str
    choice: Literal["for", "against", "abstain"]
    count: int | None = Field(default=None, ge=1)
    meeting_date: dt.date | None = None
    matter: str = "rebuild_or_alter"


class PaymentIn(StrictMutable):
    tranche: int = Field(ge=1)
    amount: float = Field(gt=0)
    paid_on: dt.date


class ApplicationIn(StrictMutable):
    id: str
    policy: str
    submitted_on: dt.date | None = None
    status: Literal["draft", "submitted", "under_review", "approved", "partially_paid", "paid", "rejected",
                    "clawed_back"] = "draft"
    assessed_amount: float | None = Field(default=None, ge=0)
    payments: list[PaymentIn] = Field(default_factory=list)


class ProjectIn(StrictMutable):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    building: str
    name: str
    applicant: str | None = None
    applicant_role: Literal["owner", "authorised_user", "esco", "unified_operator"] = "owner"
    business_model: Literal["owner_funded", "emc_shared_savings", "emc_guaranteed", "emc_energy_trusteeship",
                            "finance_lease", "ppp"] = "owner_funded"
    retrofit_area_m2: float = Field(gt=0)
    verified_area_m2: float | None = Field(default=None, gt=0)
    scope_common_parts: bool = True
    target_saving_pct: float | None = Field(default=None, ge=0, lt=1)
    rating_target: str | None = None
    other_subsidies: list[str] = Field(default_factory=list)
    listed_in_policies: list[str] = Field(default_factory=list)
    measures: list[MeasureIn] = Field(default_factory=list)
    milestones: list[MilestoneIn] = Field(default_factory=list)
    documents: list[DocumentIn] = Field(default_factory=list)
    votes: list[VoteIn] = Field(default_factory=list)
    applications: list[ApplicationIn] = Field(default_factory=list)


class SavingsIn(StrictMutable):
    building: str
    project: str | None = None
    baseline: str = Field(pattern=r"^\d{4}-\d\d-\d\d:\d{4}-\d\d-\d\d$")
    reporting: str = Field(pattern=r"^\d{4}-\d\d-\d\d:\d{4}-\d\d-\d\d$")
    model_kind: str
    cv_rmse: float = Field(ge=0)
    nmbe: float
    savings_fraction: float
    avoided_kwh: float
    fsu68: float | None = None
    fsu90: float | None = None
    adequate: bool
    source: str


class ProgramFile(StrictMutable):
    buildings: dict[str, BuildingExtra] = Field(default_factory=dict)
    owners: dict[str, OwnerExtra] = Field(default_factory=dict)
    projects: list[ProjectIn] = Field(default_factory=list)
    savings_results: list[SavingsIn] = Field(default_factory=list)


def load_program_file(path: str | os.PathLike) -> tuple[ProgramFile, Any]:
    """Parse and validate a programme YAML; ProgramError names file, line and field."""
    path = str(path)
    tree = read_tree(path, lambda ps: ProgramError("", ps), yaml_hint="") or {}
    try:
        return ProgramFile.model_validate(plain(tree)), tree
    except ValidationError as exc:
        raise ProgramError("", validation_problems(exc, path, tree)) from None


# --- audit ------------------------------------------------------------------------------------------


def audit(s: Session, actor: str, action: str, entity: str, entity_id: str, field: str | None = None,
          old: Any = None, new: Any = None) -> None:
    """Append one audit row (values as JSON text)."""
    def enc(v: Any) -> str | None:
        return None if v is None else json.dumps(v, ensure_ascii=False, default=str, sort_keys=True)

    s.add(AuditLog(actor=actor, action=action, entity=entity, entity_id=str(entity_id), field=field,
                   old_value=enc(old), new_value=enc(new)))


def _upsert(s: Session, model: type, key: str, values: dict[str, Any], actor: str, entity: str) -> Any:
    """Insert or update a row by primary key, auditing each changed field."""
    obj = s.get(model, key)
    if obj is None:
        obj = model(id=key, **values)
        s.add(obj)
        audit(s, actor, "create", entity, key, new=values)
        return obj
    for k, v in values.items():
        old = getattr(obj, k)
        if old != v:
            setattr(obj, k, v)
            audit(s, actor, "update", entity, key, k, old, v)
    return obj


# --- import -----------------------------------------------------------------------------------------


def _is_common(kind: str) -> bool:
    """A 'collective' row stands for parts held in common by all owners, not an exclusive share."""
    return kind == "collective"


def load_site_portfolio(s: Session, site: Site, actor: str, extras: ProgramFile | None = None) -> None:
    """Buildings, owners and shares from the site files (plus the programme's building/owner extras)."""
    extras = extras or ProgramFile()
    for bf in site.files:
        b = bf.building
        ex = extras.buildings.get(b.id, BuildingExtra())
        has_sub = any(p.subitem is not None for _, p in bf.points())
        _upsert(s, Building, b.id, {
            "name_zh": b.name.zh, "name_en": b.name.en, "address": b.address, "district_code": b.district_code,
            "country": ex.country, "year_built": b.year_built, "gross_floor_area_m2": b.gross_floor_area_m2,
            "floors_above": b.floors_above, "use": b.use.value, "lat": b.lat, "lon": b.lon,
            "gbt51161_class": ex.gbt51161_class, "baseline_eui_kwh_m2a": ex.baseline_eui_kwh_m2a,
            "eui_source": ex.eui_source, "has_submetering": has_sub,
            "platform_connected_since": ex.platform_connected_since,
            "has_owners_assembly": ex.has_owners_assembly, "unified_operator_id": ex.unified_operator_id,
        }, actor, "building")
        for o in b.owners:
            oe = extras.owners.get(o.owner, OwnerExtra())
            _upsert(s, Owner, o.owner, {"name": o.name, "kind": o.kind.value, "is_sme": oe.is_sme,
                                        "credit_code": oe.credit_code}, actor, "owner")
        rows = [(o.owner, o.area_m2, o.count) for o in b.owners if not _is_common(o.kind.value)]
        replace_shares(s, b.id, rows, actor, gross_floor_area_m2=b.gross_floor_area_m2, where=site_path(site, b.id))


def site_path(site: Site, building_id: str) -> str:
    for f, p in zip(site.files, site.paths, strict=False):
        if f.building.id == building_id:
            return p
    return building_id


def replace_shares(s: Session, building_id: str, rows: list[tuple[str, float, int]], actor: str,
                   gross_floor_area_m2: float | None = None, share_pct: list[float] | None = None,
                   where: str = "") -> None:
    """Set a building's ownership shares (validated: positive, unique, within the floor area, adding up)."""
    try:
        validate_shares([ShareRow(o, a, c) for o, a, c in rows], gross_floor_area_m2, share_pct, where=where)
    except OwnershipError as exc:
        raise ProgramError(str(exc)) from None
    old = {sh.owner_id: (sh.area_m2, sh.count) for sh in
           s.scalars(select(OwnershipShare).where(OwnershipShare.building_id == building_id))}
    new = {o: (a, c) for o, a, c in rows}
    if old == new:
        return
    s.execute(delete(OwnershipShare).where(OwnershipShare.building_id == building_id))
    s.flush()
    for o, a, c in rows:
        s.add(OwnershipShare(building_id=building_id, owner_id=o, area_m2=a, count=c))
    audit(s, actor, "replace", "ownership_shares", building_id, "shares",
          {k: list(v) for k, v in old.items()} or None, {k: list(v) for k, v in new.items()})


def load_policies_into(s: Session, policies: dict[str, Policy], actor: str, folder: str = "") -> None:
    for p in policies.values():
        _upsert(s, SubsidyPolicyRecord, p.id, {
            "name": p.name, "jurisdiction_level": p.jurisdiction.level, "jurisdiction_code": p.jurisdiction.code,
            "currency": p.currency, "valid_from": p.valid_from, "valid_to": p.valid_to,
            "source_file": folder, "body": p.model_dump(mode="json", by_alias=True),
        }, actor, "subsidy_policy")


def _docs_on_file(docs: Iterable[Document]) -> frozenset[str]:
    return frozenset(d.doc_type for d in docs)


def _states(project: RetrofitProject) -> list:
    from buildings.retrofit import MilestoneState

    docs = _docs_on_file(project.documents)
    return [MilestoneState(stage=Stage(m.stage), name=m.name, planned_date=m.planned_date, actual_date=m.actual_date,
                           signed_off_by=m.signed_off_by, required_docs=tuple(m.required_docs), docs_on_file=docs)
            for m in project.milestones]


def load_projects(s: Session, prog: ProgramFile, actor: str, tree: Any = None, path: str = "",
                  policies: dict[str, Policy] | None = None) -> None:
    """Projects with their measures, milestones (checked in order), documents, votes, applications, payments."""
    for pi, pj in enumerate(prog.projects):
        where = f"{path}:{line_of(tree, ('projects', pi)) if tree is not None else ''} project {pj.id}"
        _check_project_refs(s, pj, where)
        old = s.get(RetrofitProject, pj.id)
        if old is not None and ProjectIn.model_validate(project_dict(old)) == _with_default_docs(pj):
            continue  # unchanged: importing the same file twice is a no-op
        if old is not None:
            _drop_project(s, old, actor, where)
        _add_project(s, pj, actor, where)
        _complete_done_milestones(s, pj, actor, where)
        _add_applications(s, pj, actor, where, policies)
    for sv in prog.savings_results:
        _add_savings_result(s, sv, actor)


def _check_project_refs(s: Session, pj: ProjectIn, where: str) -> None:
    """The project's building and applicant must be in the records already (the site is loaded first)."""
    if s.get(Building, pj.building) is None:
        raise ProgramError(f"{where}: unknown building {pj.building!r}; load the site first")
    if pj.applicant and s.get(Owner, pj.applicant) is None:
        raise ProgramError(f"{where}: unknown applicant owner {pj.applicant!r}")


def _drop_project(s: Session, old: RetrofitProject, actor: str, where: str) -> None:
    """Remove a changed project before it is imported again (refused once money was paid on it)."""
    if old.applications and any(a.payments for a in old.applications):
        raise ProgramError(f"{where}: project already has payments recorded; it cannot be re-imported")
    for a in list(old.applications):
        s.delete(a)
    s.delete(old)
    s.flush()
    audit(s, actor, "replace", "retrofit_project", old.id)


def _add_project(s: Session, pj: ProjectIn, actor: str, where: str) -> RetrofitProject:
    """The project row with its measures, milestones (not yet completed), documents and votes."""
    proj = RetrofitProject(
        id=pj.id, building_id=pj.building, name=pj.name, applicant_owner_id=pj.applicant,
        applicant_role=pj.applicant_role, business_model=pj.business_model, retrofit_area_m2=pj.retrofit_area_m2,
        verified_area_m2=pj.verified_area_m2, scope_common_parts=pj.scope_common_parts,
        target_saving_pct=pj.target_saving_pct, rating_target=pj.rating_target,
        other_subsidies=pj.other_subsidies, listed_in_policies=pj.listed_in_policies)
    s.add(proj)
    proj.measures = [Measure(category=m.category, description=m.description, capex=m.capex,
                             expected_saving_kwh_a=m.expected_saving_kwh_a) for m in pj.measures]
    proj.milestones = [
        Milestone(seq=i + 1, stage=m.stage.value, name=m.name, planned_date=m.planned,
                  required_docs=m.required_docs if m.required_docs is not None else list(STAGE_DOCS[m.stage]))
        for i, m in enumerate(pj.milestones)]
    names = [m.name for m in pj.milestones]
    if len(set(names)) != len(names):
        raise ProgramError(f"{where}: milestone names must be unique within a project")
    ms_by_name = {m.name: m for m in proj.milestones}
    for d in pj.documents:
        if d.milestone and d.milestone not in ms_by_name:
            raise ProgramError(f"{where}: document {d.title!r} names unknown milestone {d.milestone!r}")
        proj.documents.append(Document(doc_type=d.type, title=d.title, sha256=d.sha256, uri=d.uri,
                                       signed_by=d.signed_by, signed_at=d.signed_at, visibility=d.visibility))
    for v in pj.votes:
        if s.get(Owner, v.owner) is None:
            raise ProgramError(f"{where}: vote by unknown owner {v.owner!r}")
        proj.votes.append(OwnerVote(owner_id=v.owner, choice=v.choice, count=v.count,
                                    meeting_date=v.meeting_date, matter=v.matter))
    s.flush()
    for d, dm in zip(proj.documents, pj.documents, strict=True):
        if dm.milestone:
            d.milestone_id = ms_by_name[dm.milestone].id
    audit(s, actor, "create", "retrofit_project", pj.id, new=pj.model_dump(
        mode="json", exclude={"milestones", "applications"}))
    return proj


def _complete_done_milestones(s: Session, pj: ProjectIn, actor: str, where: str) -> None:
    """Completed milestones go through the same checks as `program milestone`, in stage order."""
    done = sorted((m for m in pj.milestones if m.actual), key=lambda m: (m.actual, list(Stage).index(m.stage)))
    for m in done:
        try:
            complete_milestone(s, pj.id, m.name, m.actual, m.signed_off_by or "", actor)
        except MilestoneError as exc:
            raise ProgramError(f"{where}: {exc}") from None


def _add_applications(s: Session, pj: ProjectIn, actor: str, where: str,
                      policies: dict[str, Policy] | None) -> None:
    """The project's subsidy applications, each payment checked by ``record_payment`` in date order."""
    for a in pj.applications:
        if policies is not None and a.policy not in policies:
            raise ProgramError(f"{where}: application {a.id} names unknown policy {a.policy!r}")
        app = SubsidyApplication(id=a.id, project_id=pj.id, policy_id=a.policy, submitted_on=a.submitted_on,
                                 status=a.status, assessed_amount=a.assessed_amount)
        s.add(app)
        s.flush()
        audit(s, actor, "create", "subsidy_application", a.id, new=a.model_dump(mode="json", exclude={"payments"}))
        for pay in sorted(a.payments, key=lambda p: p.paid_on):
            record_payment(s, a.id, pay.tranche, pay.amount, pay.paid_on, actor, policies=policies)


def _add_savings_result(s: Session, sv: SavingsIn, actor: str) -> None:
    """A measured-savings result from the programme file, unless the same one is on record already."""
    bf, bt = (dt.date.fromisoformat(x) for x in sv.baseline.split(":"))
    rf, rt = (dt.date.fromisoformat(x) for x in sv.reporting.split(":"))
    same = select(SavingsResult.id).where(
        SavingsResult.building_id == sv.building, SavingsResult.baseline_from == bf,
        SavingsResult.baseline_to == bt, SavingsResult.source == sv.source,
        SavingsResult.reporting_from == rf, SavingsResult.reporting_to == rt)
    if s.scalar(same) is not None:
        return  # already imported
    s.add(SavingsResult(building_id=sv.building, project_id=sv.project, baseline_from=bf, baseline_to=bt,
                        reporting_from=rf, reporting_to=rt, model_kind=sv.model_kind, cv_rmse=sv.cv_rmse,
                        nmbe=sv.nmbe, savings_fraction=sv.savings_fraction, avoided_kwh=sv.avoided_kwh,
                        fsu68=sv.fsu68, fsu90=sv.fsu90, adequate=sv.adequate, source=sv.source, details={}))
    audit(s, actor, "create", "savings_result", sv.building, new=sv.model_dump(mode="json"))


def _with_default_docs(pj: ProjectIn) -> ProjectIn:
    """The project as stored: milestones without required_docs get their stage's standard documents, and its
    applications are listed by id (as the records list them)."""
    ms = [m if m.required_docs is not None else m.model_copy(update={"required_docs": list(STAGE_DOCS[m.stage])})
          for m in pj.milestones]
    return pj.model_copy(update={"milestones": ms, "applications": sorted(pj.applications, key=lambda a: a.id)})


def import_sample(url: str, site: Site, actor: str, program_path: str | os.PathLike | None = None) -> Any:
    """Migrate the records database at ``url`` and import the site, the shipped policies and a programme file
    (default: the sample programme) in one transaction; returns the engine. Used by `retrofit demo` and tests."""
    from buildings import SAMPLE_PROGRAMME
    from buildings.records.base import make_engine, session_factory
    from buildings.records.migrate import upgrade
    from buildings.subsidy.policy import POLICY_DIR, load_policies

    engine = make_engine(url)
    upgrade(url, engine=engine)
    with session_factory(engine).begin() as s:
        import_all(s, site, program_path or SAMPLE_PROGRAMME, load_policies(str(POLICY_DIR)), actor, str(POLICY_DIR))
    return engine


def import_all(s: Session, site: Site, program_path: str | os.PathLike | None, policies: dict[str, Policy],
               actor: str, policy_folder: str = "") -> None:
    """Site portfolio + policies + programme file, in the caller's transaction."""
    prog, tree = (load_program_file(program_path) if program_path else (ProgramFile(), None))
    unknown = [b for b in prog.buildings if b not in {f.building.id for f in site.files}]
    if unknown:
        raise ProgramError(f"{program_path}: buildings {unknown} are not in the site")
    load_site_portfolio(s, site, actor, prog)
    load_policies_into(s, policies, actor, policy_folder)
    s.flush()
    load_projects(s, prog, actor, tree, str(program_path or ""), policies)


# --- changes ----------------------------------------------------------------------------------------


def complete_milestone(s: Session, project_id: str, name: str, actual: dt.date, signed_off_by: str,
                       actor: str) -> Milestone:
    """Mark a milestone done; refused (MilestoneError) when out of order, unsigned or missing documents."""
    proj = s.get(RetrofitProject, project_id)
    if proj is None:
        raise ProgramError(f"unknown project {project_id!r}")
    target = next((m for m in proj.milestones if m.name == name), None)
    if target is None:
        raise ProgramError(f"project {project_id} has no milestone {name!r}; known: "
                           f"{', '.join(m.name for m in proj.milestones)}")
    states = _states(proj)
    st = next(x for x in states if x.name == name)
    check_completion(states, st, actual, signed_off_by)
    target.actual_date = actual
    target.signed_off_by = signed_off_by
    audit(s, actor, "complete", "milestone", f"{project_id}/{name}", "actual_date", None,
          {"actual_date": actual.isoformat(), "signed_off_by": signed_off_by})
    s.flush()
    return target


def add_document(s: Session, project_id: str, doc_type: str, title: str, content: bytes | None = None,
                 sha256: str | None = None, actor: str = "system", milestone: str | None = None,
                 signed_by: str | None = None) -> Document:
    """File a document by its SHA-256 (computed from ``content`` when given)."""
    import hashlib

    if doc_type not in DOC_TYPES:
        raise ProgramError(f"unknown document type {doc_type!r}; known: {', '.join(sorted(DOC_TYPES))}")
    digest = hashlib.sha256(content).hexdigest() if content is not None else (sha256 or "")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ProgramError("a document needs its SHA-256 (64 hex digits) or its content")
    proj = s.get(RetrofitProject, project_id)
    if proj is None:
        raise ProgramError(f"unknown project {project_id!r}")
    mid = None
    if milestone:
        m = next((m for m in proj.milestones if m.name == milestone), None)
        if m is None:
            raise ProgramError(f"project {project_id} has no milestone {milestone!r}")
        mid = m.id
    doc = Document(project_id=project_id, milestone_id=mid, doc_type=doc_type, title=title, sha256=digest,
                   signed_by=signed_by, signed_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) if signed_by else None)
    s.add(doc)
    s.flush()
    audit(s, actor, "create", "document", str(doc.id), new={"type": doc_type, "title": title, "sha256": digest})
    return doc


def record_payment(s: Session, application_id: str, tranche: int, amount: float, paid_on: dt.date, actor: str,
                   policies: dict[str, Policy] | None = None) -> Payment:
    """Record a tranche payment. Refused when the tranche is not due (stage or documents missing) or when the
    total paid would pass the tranche's share or the policy's caps. The application is locked first (FOR UPDATE;
    SQLite's write lock), so two payments recorded at once cannot both pass the cap on the same sum paid."""
    from buildings.records.queries import eligibility_for_application

    write_lock(s)
    app = s.get(SubsidyApplication, application_id, with_for_update=True, populate_existing=True)
    if app is None:
        raise PaymentError(f"unknown application {application_id!r}")
    s.expire(app, ["payments"])  # what was paid is read after the lock, not from an earlier load
    elig, policy = eligibility_for_application(s, app, policies=policies, as_of=paid_on)
    tr = next((t for t in elig.tranches if t.seq == tranche), None)
    if tr is None:
        raise PaymentError(f"policy {policy.id} has no tranche {tranche}; tranches: "
                           f"{', '.join(str(t.seq) for t in elig.tranches) or 'none'}")
    if tr.missing:
        raise PaymentError(f"tranche {tranche} of {application_id} is not due: {'; '.join(tr.missing)}")
    capped = elig.amount.capped
    if app.assessed_amount is not None:
        capped = app.assessed_amount if capped is None else min(capped, app.assessed_amount)
    if capped is None:
        raise PaymentError(f"{application_id}: the amount cannot be estimated yet ({'; '.join(elig.amount.lines)})")
    share = capped * tr.pct / 100
    paid_app = float(s.scalar(select(func.coalesce(func.sum(Payment.amount), 0.0))
                              .where(Payment.application_id == application_id)) or 0.0)
    paid_tr = float(s.scalar(select(func.coalesce(func.sum(Payment.amount), 0.0))
                             .where(Payment.application_id == application_id, Payment.tranche_seq == tranche)) or 0.0)
    if app.assessed_amount is not None and app.assessed_amount <= (elig.amount.capped or math.inf):
        why = "the assessed amount"
    elif elig.amount.caps_applied:
        why = "capped by " + ", ".join(elig.amount.caps_applied)
    else:
        why = "the policy formula, within its caps"
    if paid_app + amount > capped + 0.005:
        raise PaymentError(f"payment of {amount:,.2f} would bring {application_id} to {paid_app + amount:,.2f} "
                           f"{policy.currency}, beyond the {capped:,.2f} it may receive ({why}); nothing was recorded")
    if paid_tr + amount > share + 0.005:
        raise PaymentError(f"payment of {amount:,.2f} would bring tranche {tranche} to {paid_tr + amount:,.2f}, "
                           f"beyond its {tr.pct:g} % share of {share:,.2f}; nothing was recorded")
    pay = Payment(application_id=application_id, tranche_seq=tranche, amount=amount, paid_on=paid_on)
    s.add(pay)
    s.flush()
    audit(s, actor, "create", "payment", str(pay.id), new={"application": application_id, "tranche": tranche,
                                                           "amount": amount, "paid_on": paid_on.isoformat()})
    return pay


def record_savings(s: Session, building_id: str, result: Any, actor: str, project_id: str | None = None,
                   source: str = "telemetry") -> SavingsResult:
    """Store a buildings.savings.SavingsResult so the eligibility engine can judge on the measured number."""
    b = result.baseline
    bf, bt = b.period
    rf, rt = result.reporting_period
    row = SavingsResult(
        building_id=building_id, project_id=project_id, baseline_from=dt.date.fromisoformat(bf),
        baseline_to=dt.date.fromisoformat(bt), reporting_from=dt.date.fromisoformat(rf),
        reporting_to=dt.date.fromisoformat(rt), model_kind=b.model.kind, cv_rmse=b.stats.cv_rmse,
        nmbe=b.stats.nmbe, savings_fraction=result.savings_fraction, avoided_kwh=result.avoided_kwh,
        fsu68=_finite(result.fsu["68"]), fsu90=_finite(result.fsu["90"]), adequate=result.adequate, source=source,
        details=result.as_dict())
    s.add(row)
    s.flush()
    audit(s, actor, "create", "savings_result", building_id, new={k: v for k, v in result.as_dict().items()
                                                                   if k != "baseline"})
    return row


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


# --- export -----------------------------------------------------------------------------------------


def export_program(s: Session) -> dict[str, Any]:
    """The programme as a dict in the programme-file schema (re-importable)."""
    out: dict[str, Any] = {"buildings": {}, "owners": {}, "projects": [], "savings_results": []}
    for b in s.scalars(select(Building).order_by(Building.id)):
        out["buildings"][b.id] = _drop_none({
            "gbt51161_class": b.gbt51161_class, "baseline_eui_kwh_m2a": b.baseline_eui_kwh_m2a,
            "eui_source": b.eui_source, "has_owners_assembly": b.has_owners_assembly,
            "platform_connected_since": b.platform_connected_since, "unified_operator_id": b.unified_operator_id,
            "country": b.country})
    for o in s.scalars(select(Owner).order_by(Owner.id)):
        if o.is_sme is not None or o.credit_code:
            out["owners"][o.id] = _drop_none({"is_sme": o.is_sme, "credit_code": o.credit_code})
    for p in s.scalars(select(RetrofitProject).order_by(RetrofitProject.id)):
        out["projects"].append(project_dict(p))
    for r in s.scalars(select(SavingsResult).order_by(SavingsResult.id)):
        out["savings_results"].append(_drop_none({
            "building": r.building_id, "project": r.project_id, "baseline": f"{r.baseline_from}:{r.baseline_to}",
            "reporting": f"{r.reporting_from}:{r.reporting_to}", "model_kind": r.model_kind, "cv_rmse": r.cv_rmse,
            "nmbe": r.nmbe, "savings_fraction": r.savings_fraction, "avoided_kwh": r.avoided_kwh,
            "fsu68": r.fsu68, "fsu90": r.fsu90, "adequate": r.adequate, "source": r.source}))
    return out


def project_dict(p: RetrofitProject) -> dict[str, Any]:
    """A project in the programme-file schema (export, and the no-op check of a re-import)."""
    ms_name = {m.id: m.name for m in p.milestones}
    return _drop_none({
        "id": p.id, "building": p.building_id, "name": p.name, "applicant": p.applicant_owner_id,
        "applicant_role": p.applicant_role, "business_model": p.business_model,
        "retrofit_area_m2": p.retrofit_area_m2, "verified_area_m2": p.verified_area_m2,
        "scope_common_parts": p.scope_common_parts, "target_saving_pct": p.target_saving_pct,
        "rating_target": p.rating_target, "other_subsidies": p.other_subsidies,
        "listed_in_policies": p.listed_in_policies,
        "measures": [_drop_none({"category": m.category, "description": m.description, "capex": m.capex,
                                 "expected_saving_kwh_a": m.expected_saving_kwh_a}) for m in p.measures],
        "milestones": [_drop_none({"stage": m.stage, "name": m.name, "planned": m.planned_date,
                                   "actual": m.actual_date, "signed_off_by": m.signed_off_by,
                                   "required_docs": m.required_docs}) for m in p.milestones],
        "documents": [_drop_none({"type": d.doc_type, "title": d.title, "sha256": d.sha256,
                                  "milestone": ms_name.get(d.milestone_id), "uri": d.uri,
                                  "signed_by": d.signed_by, "signed_at": d.signed_at,
                                  "visibility": d.visibility}) for d in p.documents],
        "votes": [_drop_none({"owner": v.owner_id, "choice": v.choice, "count": v.count,
                              "meeting_date": v.meeting_date, "matter": v.matter}) for v in p.votes],
        "applications": [_drop_none({
            "id": a.id, "policy": a.policy_id, "submitted_on": a.submitted_on, "status": a.status,
            "assessed_amount": a.assessed_amount,
            "payments": [{"tranche": x.tranche_seq, "amount": x.amount, "paid_on": x.paid_on}
                         for x in a.payments]}) for a in p.applications],
    })

def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != []}


def write_yaml(data: dict[str, Any], path: str | os.PathLike) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 120
    with open(path, "w", encoding="utf-8") as fh:
        yaml.dump(json.loads(json.dumps(data, default=str, ensure_ascii=False)), fh)


CSV_TABLES: dict[str, type] = {
    "owners": Owner, "buildings": Building, "ownership_shares": OwnershipShare, "retrofit_projects": RetrofitProject,
    "measures": Measure, "milestones": Milestone, "documents": Document, "owner_votes": OwnerVote,
    "subsidy_applications": SubsidyApplication, "payments": Payment, "savings_results": SavingsResult,
}


def export_csv(s: Session, folder: str | os.PathLike) -> list[str]:
    """One CSV per table (UTF-8 with BOM so spreadsheet programs read Chinese); returns the file paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, model in CSV_TABLES.items():
        cols = [c.key for c in model.__table__.columns if c.key not in ("body", "details")]
        path = os.path.join(folder, f"{name}.csv")
        with open(path, "w", encoding="utf-8-sig", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for row in s.scalars(select(model)):
                w.writerow([_csv_cell(getattr(row, c)) for c in cols])
        paths.append(path)
    return paths


def _csv_cell(v: Any) -> Any:
    if isinstance(v, list | dict):
        return json.dumps(v, ensure_ascii=False)
    return "" if v is None else v


def import_shares_csv(s: Session, path: str | os.PathLike, actor: str) -> int:
    """Replace ownership shares from a spreadsheet: columns building_id, owner_id, area_m2 [, count, share_pct,
    owner_name, owner_kind]. Rows of one building must add up (areas within the floor area, share_pct to 100)."""
    path = str(path)
    by_b: dict[str, list[tuple[int, dict[str, str]]]] = {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"building_id", "owner_id", "area_m2"}
        if not need <= set(reader.fieldnames or []):
            raise ProgramError(f"{path}:1: columns {sorted(need - set(reader.fieldnames or []))} are missing")
        for i, row in enumerate(reader, start=2):
            by_b.setdefault(row["building_id"], []).append((i, row))
    n = 0
    for bid, rows in by_b.items():
        b = s.get(Building, bid)
        if b is None:
            raise ProgramError(f"{path}:{rows[0][0]}: building_id: unknown building {bid!r}")
        parsed: list[tuple[str, float, int]] = []
        pcts: list[float] = []
        for line, r in rows:
            try:
                area = float(r["area_m2"])
                count = int(r.get("count") or 1)
                if r.get("share_pct"):
                    pcts.append(float(r["share_pct"]))
            except ValueError as exc:
                raise ProgramError(f"{path}:{line}: {exc}") from None
            if s.get(Owner, r["owner_id"]) is None:
                if not r.get("owner_name"):
                    raise ProgramError(f"{path}:{line}: owner_id: unknown owner {r['owner_id']!r}; add owner_name "
                                       f"and owner_kind columns to create it")
                _upsert(s, Owner, r["owner_id"], {"name": r["owner_name"], "kind": r.get("owner_kind") or "enterprise",
                                                  "is_sme": None, "credit_code": None}, actor, "owner")
            parsed.append((r["owner_id"], area, count))
        if pcts and len(pcts) != len(parsed):
            raise ProgramError(f"{path}: building {bid}: share_pct is given on some rows but not all")
        where = f"{path}: building {bid} (lines {rows[0][0]}-{rows[-1][0]})"
        replace_shares(s, bid, parsed, actor, b.gross_floor_area_m2, pcts or None, where=where)
        n += len(parsed)
    return n


def import_measures_csv(s: Session, path: str | os.PathLike, actor: str) -> int:
    """Append measures from a spreadsheet: columns project_id, category, capex [, description,
    expected_saving_kwh_a]."""
    path = str(path)
    n = 0
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for i, r in enumerate(csv.DictReader(fh), start=2):
            try:
                m = MeasureIn(category=r.get("category", ""), description=r.get("description") or "",
                              capex=float(r.get("capex") or "nan"),
                              expected_saving_kwh_a=float(r["expected_saving_kwh_a"])
                              if r.get("expected_saving_kwh_a") else None)
            except (ValidationError, ValueError) as exc:
                msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
                raise ProgramError(f"{path}:{i}: {msg}") from None
            if m.capex != m.capex:
                raise ProgramError(f"{path}:{i}: capex: a number is required")
            if s.get(RetrofitProject, r.get("project_id", "")) is None:
                raise ProgramError(f"{path}:{i}: project_id: unknown project {r.get('project_id')!r}")
            s.add(Measure(project_id=r["project_id"], **m.model_dump()))
            audit(s, actor, "create", "measure", r["project_id"], new=m.model_dump())
            n += 1
    return n
