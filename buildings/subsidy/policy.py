"""Subsidy policies as data: pydantic models of buildings/policies/*.yaml, loaded with file/line errors.

A policy has eligibility (a tree of all / any / not over conditions on known fields), an amount formula, caps,
staged payments (tranches) tied to a project stage and documents, and provenance: every number is marked
``sourced`` (with its source) or ``illustrative``. Unknown fields, unknown operators, values of the wrong type and
contradictory conditions (``>= 5000`` and ``< 3000`` on the same field in one ``all``) are load errors.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from buildings.retrofit import DOC_TYPES, Stage
from buildings.site import Problem
from buildings.strict import Strict
from buildings.yamlfile import plain, read_tree, suggest, validation_problems, yaml_files

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"


class ProvStatus(StrEnum):
    SOURCED = "sourced"
    ILLUSTRATIVE = "illustrative"


class Provenance(Strict):
    status: ProvStatus
    source: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _sourced_has_source(self) -> Provenance:
        if self.status == ProvStatus.SOURCED and not self.source:
            raise ValueError("a sourced number needs source: (which document, e.g. 'S15 Shanghai 2016')")
        return self


@dataclass(frozen=True)
class FieldSpec:
    """A fact a condition may test: its type, whether it can change before applying, and what it means."""

    type: Literal["number", "bool", "str", "list", "date"]
    static: bool  # a fact the applicant cannot change (building age, use, place): failing it = not eligible
    doc: str


FIELDS: dict[str, FieldSpec] = {
    "policy.open": FieldSpec("bool", True, "the policy is open on the evaluation date"),
    "building.in_jurisdiction": FieldSpec("bool", True, "the building lies in the policy's jurisdiction"),
    "building.district_code": FieldSpec("str", True, "administrative code of the district (500103 = Yuzhong)"),
    "building.country": FieldSpec("str", True, "ISO country code"),
    "building.use": FieldSpec("str", True, "office, retail, hotel, mixed, converted_industrial"),
    "building.use_type_public": FieldSpec("bool", True, "a public (non-residential) building in the Chinese sense"),
    "building.year_built": FieldSpec("number", True, "year of construction"),
    "building.age_years": FieldSpec("number", True, "years since construction on the evaluation date"),
    "building.gross_floor_area_m2": FieldSpec("number", True, "gross floor area"),
    "city.is_key_city": FieldSpec("bool", True, "the city is a national public-building retrofit key city"),
    "building.monitoring.has_submetering": FieldSpec("bool", False, "sub-item energy meters in the site file"),
    "building.monitoring.platform_connected_since": FieldSpec("date", False, "first day of platform upload"),
    "building.monitoring.months_reporting": FieldSpec("number", False, "months of meter data uploaded"),
    "building.ownership.owner_count": FieldSpec("number", True, "number of owners (headcount)"),
    "building.ownership.structure_class": FieldSpec("str", True, "single, concentrated or fragmented"),
    "building.ownership.top_share": FieldSpec("number", True, "largest owner's share of exclusive area"),
    "building.ownership.top3_share": FieldSpec("number", True, "three largest owners' share"),
    "building.ownership.hhi": FieldSpec("number", True, "Herfindahl index of the shares (0..1)"),
    "building.ownership.unified_operator_id": FieldSpec("str", False, "a unified operator (统一运营) is appointed"),
    "owner.kind": FieldSpec("str", True, "kind of the applicant owner"),
    "owner.is_sme": FieldSpec("bool", True, "the applicant is an SME"),
    "project.retrofit_area_m2": FieldSpec("number", False, "area the retrofit benefits"),
    "project.targets.energy_saving_pct": FieldSpec("number", False, "planned saving fraction (0.2 = 20 %)"),
    "project.measure_categories": FieldSpec("list", False, "categories of the project's measures"),
    "project.other_subsidies": FieldSpec("list", False, "other subsidy policies funding this project"),
    "project.listed_in_policies": FieldSpec("list", False, "policies whose programme lists this project"),
    "project.vote_required": FieldSpec("bool", True, "Civil Code art. 278 vote needed (several owners, shared parts)"),
    "project.vote_passed": FieldSpec("bool", False, "the art. 278 vote reached quorum and approval"),
    "project.governance_approval.area_approval_pct": FieldSpec("number", False, "approving share of voting area"),
    "project.governance_approval.headcount_approval_pct": FieldSpec("number", False, "approving share of voters"),
    "project.construction_started": FieldSpec("bool", False, "construction has started"),
    "application.submitted_before_works": FieldSpec("bool", True, "the application was lodged before works began"),
    "savings.measured_pct": FieldSpec("number", False, "measured saving fraction (IPMVP option C)"),
    "savings.adequate": FieldSpec("bool", False, "the measured savings pass Guideline 14 and the FSU test"),
}

OPS = ("==", "!=", ">=", "<=", ">", "<", "in", "not_in", "contains", "exists")


class Condition(Strict):
    field: str
    op: str
    value: Any = None
    provenance: Provenance | None = None

    @model_validator(mode="after")
    def _known(self) -> Condition:
        if self.field not in FIELDS:
            raise ValueError(f"unknown condition field {self.field!r}{suggest(self.field, FIELDS)}; see FIELDS in "
                             "buildings/subsidy/policy.py")
        if self.op not in OPS:
            raise ValueError(f"unknown operator {self.op!r}; known: {', '.join(OPS)}")
        spec = FIELDS[self.field]
        v = self.value
        if self.op == "exists":
            return self
        if v is None:
            raise ValueError(f"operator {self.op!r} needs a value")
        if self.op in ("in", "not_in"):
            if not isinstance(v, list) or not v:
                raise ValueError(f"operator {self.op!r} needs a non-empty list value")
        elif self.op in (">=", "<=", ">", "<"):
            if spec.type not in ("number", "date") or isinstance(v, bool) or not isinstance(v, int | float | dt.date):
                raise ValueError(f"{self.field} is a {spec.type}; operator {self.op!r} needs a number field and value")
        elif self.op == "contains" and spec.type != "list":
            raise ValueError(f"operator 'contains' applies to list fields; {self.field} is a {spec.type}")
        if spec.type == "bool" and self.op in ("==", "!=") and not isinstance(v, bool):
            raise ValueError(f"{self.field} is true/false; value {v!r} is not")
        not_number = isinstance(v, bool) or not isinstance(v, int | float)
        if spec.type == "number" and self.op in ("==", "!=") and not_number:
            raise ValueError(f"{self.field} is a number; value {v!r} is not")
        if isinstance(v, int | float) and not isinstance(v, bool) and self.provenance is None:
            raise ValueError(f"the number {v} in the condition on {self.field} needs provenance: "
                             "{status: sourced, source: ...} or {status: illustrative}")
        return self


class All(Strict):
    all: list[Rule] = Field(min_length=1)


class AnyOf(Strict):
    any: list[Rule] = Field(alias="any", min_length=1)


class Not(Strict):
    not_: Rule = Field(alias="not")


Rule = Condition | All | AnyOf | Not
All.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


class Tier(Strict):
    min: float = Field(ge=0)
    max: float | None = None
    rate: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Tier:
        if self.max is not None and self.max <= self.min:
            raise ValueError(f"tier max {self.max} must be above min {self.min}")
        return self


class AmountType(StrEnum):
    TIERED_RATE_PER_AREA = "tiered_rate_per_area"
    PCT_OF_COST = "pct_of_cost"
    FUNDING_FACTOR_X_CARBON = "funding_factor_x_carbon"
    MATCH = "match"  # a share of another policy's amount for the same project (district top-up)
    SUM = "sum"


class Amount(Strict):
    type: AmountType
    basis: Literal["verified_area_m2", "benefiting_area_m2", "eligible_cost", "verified_tco2_a"] | None = None
    tiers: list[Tier] | None = None
    rate: float | None = None
    measures: Literal["all", "energy", "non_energy"] = "all"  # which measures' cost a pct_of_cost part counts
    policy_id: str | None = None  # for match
    parts: list[Amount] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Amount:
        t = self.type
        if t == AmountType.TIERED_RATE_PER_AREA:
            if not self.tiers or self.basis not in ("verified_area_m2", "benefiting_area_m2"):
                raise ValueError("tiered_rate_per_area needs tiers and basis verified_area_m2 or benefiting_area_m2")
            ts = sorted(self.tiers, key=lambda x: x.min)
            for a, b in zip(ts, ts[1:], strict=False):
                if a.max is None or a.max > b.min:
                    raise ValueError(f"tiers overlap: [{a.min}, {a.max}) and [{b.min}, {b.max}); give each a max "
                                     "no higher than the next tier's min")
        elif t == AmountType.PCT_OF_COST:
            if self.rate is None or not 0 < self.rate <= 1:
                raise ValueError("pct_of_cost needs rate as a fraction in (0, 1]")
        elif t == AmountType.MATCH:
            if not self.policy_id or self.rate is None:
                raise ValueError("match needs policy_id (the policy it tops up) and rate (e.g. 0.5)")
        elif t == AmountType.SUM:
            if not self.parts:
                raise ValueError("sum needs parts")
        return self


Amount.model_rebuild()


class Caps(Strict):
    abs_max: float | None = Field(default=None, gt=0)
    pct_of_eligible_cost_max: float | None = Field(default=None, gt=0, le=1)
    per_owner_max: float | None = Field(default=None, gt=0)
    abs_max_by_rating: dict[str, float] | None = None


class Tranche(Strict):
    seq: int = Field(ge=1)
    pct: float = Field(gt=0, le=100)
    basis: Literal["provisional", "final"]
    trigger_stage: Stage
    required_docs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _docs_known(self) -> Tranche:
        bad = [d for d in self.required_docs if d not in DOC_TYPES]
        if bad:
            raise ValueError(f"unknown document type(s) {bad}; known: {', '.join(sorted(DOC_TYPES))}")
        return self


class Jurisdiction(Strict):
    level: Literal["central", "municipal", "district", "foreign"]
    code: str


class Policy(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    name: str
    name_en: str | None = None
    jurisdiction: Jurisdiction
    currency: str = "CNY"
    valid_from: dt.date
    valid_to: dt.date | None = None
    budget_total: float | None = None
    funding_sources: list[dict[str, Any]] = Field(default_factory=list)
    eligibility: Rule
    savings_metric: Literal["energy_pct_per_m2", "carbon_pct_per_m2", "rating_attained", "tce_saved", "none"]
    verification: dict[str, Any] = Field(default_factory=dict)
    amount: Amount
    caps: Caps = Caps()
    excluded_with: list[str] = Field(default_factory=list)
    tranches: list[Tranche] = Field(default_factory=list)
    clawback: list[str] = Field(default_factory=list)
    provenance: dict[str, Provenance] = Field(default_factory=dict)
    notes: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Policy:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        if self.tranches:
            total = sum(t.pct for t in self.tranches)
            if abs(total - 100) > 1e-6:
                raise ValueError(f"tranche percentages add up to {total:g}, not 100")
            seqs = [t.seq for t in self.tranches]
            if seqs != sorted(set(seqs)):
                raise ValueError(f"tranche seq numbers must be unique and increasing: {seqs}")
        for path, problem in contradictions(self.eligibility):
            raise ValueError(f"contradictory conditions in eligibility{path}: {problem}")
        unmarked = [p for p in numeric_paths(self.model_dump(mode="json", by_alias=True,
                                                             include={"amount", "caps", "tranches",
                                                                      "budget_total"}))
                    if not _covered(p, self.provenance)]
        if unmarked:
            raise ValueError(f"number(s) without provenance: {', '.join(unmarked)}; add a provenance: entry "
                             "(status sourced with source, or illustrative) for each path or a prefix of it")
        return self

    def min_platform_months(self) -> float | None:
        v = self.verification.get("min_platform_upload_months")
        return float(v) if v is not None else None


def numeric_paths(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every number in a dumped model (list indices as [i]); None values are skipped."""
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += numeric_paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += numeric_paths(v, f"{prefix}[{i}]")
    elif isinstance(node, int | float) and not isinstance(node, bool):
        if not (prefix.endswith(".seq") or prefix.endswith(".min") and node == 0):
            out.append(prefix)
    return out


def _covered(path: str, prov: dict[str, Provenance]) -> bool:
    """A path is covered by a provenance key equal to it or a prefix of it (at a '.' or '[' boundary)."""
    return any(path == k or path.startswith(k + ".") or path.startswith(k + "[") for k in prov)


def _interval(conds: list[Condition]) -> tuple[float, bool, float, bool]:
    lo, lo_in, hi, hi_in = -math.inf, True, math.inf, True
    for c in conds:
        v = c.value.toordinal() if isinstance(c.value, dt.date) else float(c.value)
        if c.op in (">=", ">", "=="):
            inc = c.op != ">"
            if v > lo or (v == lo and not inc):
                lo, lo_in = v, inc
        if c.op in ("<=", "<", "=="):
            inc = c.op != "<"
            if v < hi or (v == hi and not inc):
                hi, hi_in = v, inc
    return lo, lo_in, hi, hi_in


def contradictions(rule: Rule, path: str = "") -> list[tuple[str, str]]:
    """Conditions of one ``all`` that no value can satisfy together (numeric ranges, equal/in sets)."""
    if isinstance(rule, AnyOf):
        return [c for i, r in enumerate(rule.any) for c in contradictions(r, f"{path}.any[{i}]")]
    if isinstance(rule, Not):
        return contradictions(rule.not_, f"{path}.not")
    if not isinstance(rule, All):
        return []
    out: list[tuple[str, str]] = []
    by_field: dict[str, list[Condition]] = {}
    for i, r in enumerate(rule.all):
        if isinstance(r, Condition):
            by_field.setdefault(r.field, []).append(r)
        else:
            out += contradictions(r, f"{path}.all[{i}]")
    for f, cs in by_field.items():
        if _range_empty(f, cs) or _sets_empty(cs):
            desc = " and ".join(f"{c.op} {c.value!r}" for c in cs)
            out.append((path, f"{f} {desc} can never all hold"))
    return out


def _range_empty(field: str, cs: list[Condition]) -> bool:
    """True when numeric or date bounds on one field leave no value between them."""
    if FIELDS[field].type not in ("number", "date"):
        return False
    if not all(c.op in (">=", ">", "<=", "<", "==") and not isinstance(c.value, str) for c in cs):
        return False
    lo, lo_in, hi, hi_in = _interval(cs)
    return lo > hi or (lo == hi and not (lo_in and hi_in))


def _sets_empty(cs: list[Condition]) -> bool:
    """True when ==/in conditions allow values that !=/not_in conditions all ban (or none at all)."""
    allowed: set | None = None
    banned: set = set()
    for c in cs:
        if c.op == "!=":
            banned.add(_hashable(c.value))
        elif c.op == "not_in":
            banned |= {_hashable(x) for x in c.value}
        elif c.op in ("==", "in"):
            s = {_hashable(c.value)} if c.op == "==" else {_hashable(x) for x in c.value}
            allowed = s if allowed is None else allowed & s
    return allowed is not None and not (allowed - banned)


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


class PolicyError(ValueError):
    """A policy file that cannot be loaded; carries every problem with file, line and field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_policy(path: str | os.PathLike) -> Policy:
    """Load and validate one policy YAML file; PolicyError names file, line and field."""
    path = str(path)
    tree = read_tree(path, PolicyError, yaml_hint="", mapping="expected a mapping (a policy)")
    try:
        return Policy.model_validate(plain(tree))
    except ValidationError as exc:
        raise PolicyError(_most_specific(validation_problems(exc, path, tree, members=RULE_MEMBERS))) from None


RULE_MEMBERS = ("Condition", "All", "AnyOf", "Not")  # pydantic names the union branch of a Rule in its locs


def _most_specific(problems: list[Problem]) -> list[Problem]:
    """A bad condition fails every union branch; keep the condition's own error, not 'extra field' noise."""
    real = [p for p in problems if "Extra inputs are not permitted" not in p.message
            and "Field required" not in p.message]
    return real or problems


def load_policies(folder: str | os.PathLike = POLICY_DIR) -> dict[str, Policy]:
    """Every policy in a folder (files starting with '_' are shared data, not policies). All or nothing."""
    problems: list[Problem] = []
    out: dict[str, Policy] = {}
    for path in yaml_files(os.fspath(folder)):
        try:
            p = load_policy(path)
        except PolicyError as exc:
            problems += exc.problems
            continue
        if p.id in out:
            problems.append(Problem(file=path, line=None, field="id", message=f"policy id {p.id!r} is used twice"))
        out[p.id] = p
    for p in out.values():
        for part in _match_parts(p.amount):
            if part.policy_id not in out:
                problems.append(Problem(file=str(folder), line=None, field=f"{p.id}.amount",
                                        message=f"tops up unknown policy {part.policy_id!r}"))
    if problems:
        raise PolicyError(problems)
    return out


def _match_parts(a: Amount) -> list[Amount]:
    if a.type == AmountType.MATCH:
        return [a]
    return [x for p in a.parts or [] for x in _match_parts(p)]
