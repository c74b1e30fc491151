"""The one status vocabulary of subsidies, shared by the eligibility engine and the read model (insight/):
a condition's state, a policy's verdict and a tranche's state. StrEnums, so JSON and comparisons with the
plain strings of older records still read "pass", "eligible", "locked"."""

from __future__ import annotations

from enum import StrEnum


class ConditionStatus(StrEnum):
    """Three-valued: the condition holds, does not, or cannot be judged (no data)."""

    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


class Verdict(StrEnum):
    """A policy for a building: the whole tree passes; it could once the applicant acts; it cannot."""

    ELIGIBLE = "eligible"
    NOT_YET = "not_yet"
    NOT_ELIGIBLE = "not_eligible"


class TrancheState(StrEnum):
    """A staged payment: fully paid; its stage and documents are in place; still waiting for them."""

    PAID = "paid"
    PAYABLE = "payable"
    LOCKED = "locked"


__all__ = ["ConditionStatus", "TrancheState", "Verdict"]
