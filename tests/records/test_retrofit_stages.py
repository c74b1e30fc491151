"""Stages, milestone order and progress computed from milestones (pure functions)."""

from __future__ import annotations

import datetime as dt

import pytest

from buildings.retrofit import MilestoneError, MilestoneState, Stage, check_completion, progress

D = dt.date


def _ms() -> list[MilestoneState]:
    docs = frozenset({"audit_report", "retrofit_plan", "reviewed_construction_drawings"})
    return [
        MilestoneState(Stage.AUDIT, "audit", actual_date=D(2025, 1, 10), signed_off_by="auditor",
                       required_docs=("audit_report",), docs_on_file=docs),
        MilestoneState(Stage.DESIGN, "design", required_docs=("retrofit_plan",), docs_on_file=docs),
        MilestoneState(Stage.APPROVAL, "approval", required_docs=("expert_review_minutes",), docs_on_file=docs),
        MilestoneState(Stage.CONSTRUCTION, "build", docs_on_file=docs),
    ]


def test_progress_from_milestones() -> None:
    ms = _ms()
    p = progress(ms)
    assert p.stage is Stage.DESIGN and p.fraction == pytest.approx(0.08) and p.next_milestone == "design"
    ms[1].actual_date = D(2025, 2, 1)
    p = progress(ms)
    assert p.fraction == pytest.approx(0.18) and p.stage is Stage.APPROVAL
    assert p.missing_docs == ["expert_review_minutes"]


def test_out_of_order_refused() -> None:
    ms = _ms()
    with pytest.raises(MilestoneError, match="out of order.*'design'"):
        check_completion(ms, ms[3], D(2025, 5, 1), "supervisor")


def test_date_before_earlier_stage_refused() -> None:
    ms = _ms()
    with pytest.raises(MilestoneError, match="before 2025-01-10"):
        check_completion(ms, ms[1], D(2024, 12, 1), "designer")


def test_missing_documents_and_signoff_refused() -> None:
    ms = _ms()
    ms[1].actual_date = D(2025, 2, 1)
    with pytest.raises(MilestoneError, match="expert_review_minutes"):
        check_completion(ms, ms[2], D(2025, 3, 1), "bureau")
    with pytest.raises(MilestoneError, match="signs it off"):
        check_completion(ms, ms[2], D(2025, 3, 1), " ")
    check_completion(ms, ms[1].__class__(Stage.APPROVAL, "x"), D(2025, 3, 1), "bureau")  # no docs needed: ok
