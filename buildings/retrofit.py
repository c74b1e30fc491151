"""Retrofit projects: the stages, the milestones in them, their documents, and progress computed from them.

A project walks the stages in order: audit -> design -> approval -> procurement -> construction ->
commissioning -> M&V -> subsidy claim -> payment. Each stage has one or more milestones; a milestone is done
when it has an actual date, a sign-off and its required documents. A milestone cannot be completed while an
earlier stage still has open milestones, nor dated before the last completed milestone of an earlier stage.
Progress is never typed in: it is the share of stage weight whose milestones are done.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Stage(StrEnum):
    AUDIT = "audit"
    DESIGN = "design"
    APPROVAL = "approval"
    PROCUREMENT = "procurement"
    CONSTRUCTION = "construction"
    COMMISSIONING = "commissioning"
    MV = "mv"
    SUBSIDY_CLAIM = "subsidy_claim"
    PAYMENT = "payment"


STAGES: tuple[Stage, ...] = tuple(Stage)
STAGE_ORDER = {s: i for i, s in enumerate(STAGES)}
STAGE_LABELS = {
    Stage.AUDIT: ("能源审计", "energy audit"), Stage.DESIGN: ("改造方案设计", "design"),
    Stage.APPROVAL: ("评审与批准", "approval"), Stage.PROCUREMENT: ("采购", "procurement"),
    Stage.CONSTRUCTION: ("施工", "construction"), Stage.COMMISSIONING: ("调试与竣工验收", "commissioning"),
    Stage.MV: ("测量与验证", "measurement & verification"), Stage.SUBSIDY_CLAIM: ("补助申请", "subsidy claim"),
    Stage.PAYMENT: ("拨付", "payment"),
}

# Documents a stage normally needs (subsidy-policy.md section 5); a milestone may name more.
DOC_TYPES = frozenset({
    "audit_report", "energy_bills", "retrofit_plan", "reviewed_construction_drawings", "expert_review_minutes",
    "public_notice", "vote_minutes", "owner_authorisation", "tender_docs", "emc_contract", "equipment_invoice",
    "progress_report", "commissioning_report", "acceptance_filing", "as_built_drawings",
    "platform_data_certificate", "mv_report", "subsidy_application", "payment_order", "financial_audit_report",
})
STAGE_DOCS: dict[Stage, tuple[str, ...]] = {
    Stage.AUDIT: ("audit_report",),
    Stage.DESIGN: ("retrofit_plan", "reviewed_construction_drawings"),
    Stage.APPROVAL: ("expert_review_minutes",),
    Stage.PROCUREMENT: ("tender_docs", "equipment_invoice"),
    Stage.CONSTRUCTION: ("progress_report",),
    Stage.COMMISSIONING: ("commissioning_report", "acceptance_filing", "as_built_drawings"),
    Stage.MV: ("mv_report", "platform_data_certificate"),
    Stage.SUBSIDY_CLAIM: ("subsidy_application", "public_notice"),
    Stage.PAYMENT: ("payment_order",),
}
# Progress weight of each stage: the building work carries the most.
STAGE_WEIGHTS: dict[Stage, float] = {
    Stage.AUDIT: 0.08, Stage.DESIGN: 0.10, Stage.APPROVAL: 0.08, Stage.PROCUREMENT: 0.10,
    Stage.CONSTRUCTION: 0.30, Stage.COMMISSIONING: 0.10, Stage.MV: 0.12, Stage.SUBSIDY_CLAIM: 0.06,
    Stage.PAYMENT: 0.06,
}

MEASURE_CATEGORIES = frozenset({
    "bas_bms", "submetering_platform", "led_lighting", "lighting_controls", "vfd_pump_fan", "chiller_plant",
    "heat_recovery", "envelope_window_film", "envelope_window_replace", "elevator_regen", "elevator_modernise",
    "smart_access_security", "fire_iot", "renewable_pv", "dhw", "power_distribution", "schedule_fix", "other",
})
# Measures that save no energy by themselves (safety, access, lifts): funded only by smart-building parts.
NON_ENERGY_MEASURES = frozenset({"smart_access_security", "fire_iot", "elevator_modernise"})


class MilestoneError(ValueError):
    """A milestone that cannot be completed (out of order, undated, unsigned, missing documents)."""


@dataclass
class MilestoneState:
    """What the progress logic needs of a milestone."""

    stage: Stage
    name: str
    planned_date: dt.date | None = None
    actual_date: dt.date | None = None
    signed_off_by: str | None = None
    required_docs: tuple[str, ...] = ()
    docs_on_file: frozenset[str] = field(default_factory=frozenset)

    @property
    def done(self) -> bool:
        return self.actual_date is not None

    @property
    def missing_docs(self) -> list[str]:
        return [d for d in self.required_docs if d not in self.docs_on_file]


def check_completion(milestones: Sequence[MilestoneState], target: MilestoneState, actual_date: dt.date,
                     signed_off_by: str) -> None:
    """Refuse to complete ``target`` out of order, without sign-off, or without its documents."""
    if target.done:
        raise MilestoneError(f"milestone {target.name!r} ({target.stage}) is already done on {target.actual_date}")
    if not signed_off_by.strip():
        raise MilestoneError(f"milestone {target.name!r}: say who signs it off (signed_off_by)")
    order = STAGE_ORDER[target.stage]
    open_before = [m for m in milestones if STAGE_ORDER[m.stage] < order and not m.done]
    if open_before:
        names = ", ".join(f"{m.name!r} ({m.stage})" for m in open_before)
        raise MilestoneError(f"milestone {target.name!r} ({target.stage}) is out of order: earlier stage "
                             f"milestone(s) {names} are not done yet")
    earlier = [m.actual_date for m in milestones if STAGE_ORDER[m.stage] < order and m.actual_date]
    if earlier and actual_date < max(earlier):
        raise MilestoneError(f"milestone {target.name!r} dated {actual_date} is before {max(earlier)}, when an "
                             f"earlier stage was completed; check the date")
    if target.missing_docs:
        raise MilestoneError(f"milestone {target.name!r} needs document(s) {', '.join(target.missing_docs)} on "
                             f"file before it can be signed off")


@dataclass(frozen=True)
class Progress:
    fraction: float  # 0..1, weighted by stage
    stage: Stage | None  # the first stage with an open milestone; None when everything is done
    done_stages: list[Stage]
    next_milestone: str | None
    missing_docs: list[str]

    def as_dict(self) -> dict:
        return {"progress": round(self.fraction, 4), "stage": self.stage.value if self.stage else "closed",
                "done_stages": [s.value for s in self.done_stages], "next_milestone": self.next_milestone,
                "missing_docs": self.missing_docs}


def progress(milestones: Sequence[MilestoneState]) -> Progress:
    """Progress from the milestones: each stage's weight times the share of its milestones that are done.

    A stage without milestones counts as not started, so a project that skipped planning its stages shows
    little progress rather than a lot.
    """
    by_stage: dict[Stage, list[MilestoneState]] = {s: [] for s in STAGES}
    for m in milestones:
        by_stage[m.stage].append(m)
    frac = 0.0
    done_stages: list[Stage] = []
    current: Stage | None = None
    for s in STAGES:
        ms = by_stage[s]
        share = sum(m.done for m in ms) / len(ms) if ms else 0.0
        frac += STAGE_WEIGHTS[s] * share
        if ms and share == 1.0:
            done_stages.append(s)
        elif current is None:
            current = s
    nxt = next((m for m in sorted(milestones, key=lambda m: STAGE_ORDER[m.stage]) if not m.done), None)
    return Progress(fraction=min(frac, 1.0), stage=current, done_stages=done_stages,
                    next_milestone=nxt.name if nxt else None, missing_docs=nxt.missing_docs if nxt else [])


def stage_complete(milestones: Sequence[MilestoneState], stage: Stage) -> bool:
    """Whether a stage has milestones and all of them are done."""
    ms = [m for m in milestones if m.stage == stage]
    return bool(ms) and all(m.done for m in ms)
