"""The retrofit programme: projects, subsidy applications, every policy's eligibility, measured savings."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from api.deps import ID, NOT_FOUND, RECORDS_ERRORS, V1, BuildingQ, Limit, Offset, Sc, building_file, page
from buildings.access import Can, ScopeDenied
from buildings.savings import BaselineError
from buildings.subsidy.status import Verdict
from insight import retrofit as records
from insight.savings import measure_for
from insight.scope import Scope

router = APIRouter(prefix=V1, responses=RECORDS_ERRORS, tags=["retrofit"])
PERIOD = r"^\d{4}-\d{2}-\d{2}:\d{4}-\d{2}-\d{2}$"


def projects_of(sc: Scope, building: str | None) -> list[dict[str, Any]]:
    """The records' project rows of the token's buildings (or one); 403 for a role without records."""
    try:
        sc.require(Can.RECORDS)
    except ScopeDenied:
        raise HTTPException(403, f"{sc.principal.role.value} tokens may not read retrofit records") from None
    if building is not None and not sc.allows(building):
        raise ScopeDenied(NOT_FOUND)
    return records.project_rows(sc, building)


@router.get("/projects")
def projects(sc: Sc, building: BuildingQ = None, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Retrofit projects: stage, progress, budget, measures, milestones, document digests, applications."""
    return page(projects_of(sc, building), limit, offset)


@router.get("/subsidies")
def subsidies(sc: Sc, building: BuildingQ = None, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Subsidy applications with status, assessed and paid amounts."""
    items = [{"application_id": a["id"], "project_id": p["project_id"], "building_id": p["building_id"],
              "policy_id": a["policy_id"], "status": a["status"], "assessed_amount": a["assessed_amount"],
              "paid": a["paid"]} for p in projects_of(sc, building) for a in p["applications"]]
    return page(items, limit, offset)


def assessment_json(a: records.PolicyAssessment) -> dict[str, Any]:
    """A policy assessment as the API has always served it (``eligible`` is null while not yet decided)."""
    return {"policy_id": a.policy_id, "policy_zh": a.policy.zh, "policy_en": a.policy.en,
            "eligible": {Verdict.ELIGIBLE: True, Verdict.NOT_ELIGIBLE: False}.get(a.verdict), "verdict": a.verdict,
            "estimated": a.estimated, "paid": a.paid,
            "conditions": [{"label_zh": c.label.zh, "label_en": c.label.en, "status": c.status,
                            "expected": c.expected, "actual": c.actual, "evidence": c.evidence,
                            "evidence_msg": c.evidence_msg.as_dict() if c.evidence_msg else None}
                           for c in a.conditions],
            "missing": list(a.missing), "todo": [x.as_dict() for x in a.todo]}


@router.get("/buildings/{building_id}/subsidies")
def eligibility(building_id: ID, sc: Sc) -> dict[str, Any]:
    """Every policy's eligibility verdict for the building: conditions with evidence, amount, what is missing."""
    building_file(sc, building_id)
    projects_of(sc, building_id)  # role check
    return {"building": building_id, "policies": [assessment_json(a) for a in records.subsidies(sc, building_id)]}


def _parse_period(text: str | None, what: str) -> tuple[dt.date, dt.date] | None:
    if text is None:
        return None
    a, _, b = text.partition(":")
    try:
        first, last = dt.date.fromisoformat(a), dt.date.fromisoformat(b)
    except ValueError:
        raise HTTPException(422, f"{what}: {text!r} is not FROM:TO with dates YYYY-MM-DD") from None
    if last < first:
        raise HTTPException(422, f"{what}: {last} is before {first}")
    return first, last


@router.get("/buildings/{building_id}/savings", responses={422: {"description": "no usable baseline"}})
def savings(building_id: ID, sc: Sc,
            baseline: str | None = Query(None, pattern=PERIOD, description="FROM:TO, default the year before "
                                                                             "the retrofit date"),
            reporting: str | None = Query(None, pattern=PERIOD, description="FROM:TO, default the year from the "
                                                                               "retrofit date")) -> JSONResponse:
    """Measured savings, IPMVP option C: the same function (insight.savings) as `retrofit savings`, the
    subsidy check's recorded result and the dashboard. 422 with the reason when the baseline is refused."""
    building_file(sc, building_id)
    projects_of(sc, building_id)  # role check
    b, r = _parse_period(baseline, "baseline"), _parse_period(reporting, "reporting")
    if (b is None) != (r is None):
        raise HTTPException(422, "give both baseline and reporting, or neither")
    try:
        body = measure_for(sc, building_id, b, r).as_dict()
    except BaselineError as exc:
        raise HTTPException(422, f"baseline refused: {exc.reason}") from None
    # an infinite savings uncertainty (no savings) is null in JSON, which has no Infinity
    return JSONResponse(json.loads(json.dumps(body, default=str), parse_constant=lambda _c: None))
