"""The eligibility engine: a policy and a building's facts -> eligible / not yet / not eligible, with every
condition's status and evidence, the estimated amount after caps, the staged payments and what is missing.

Three-valued logic: a condition passes, fails, or is unknown (no data). The verdict is ``eligible`` when the
whole tree passes; ``not_eligible`` when it would still fail even if every condition the applicant can still
change (the non-static ones: savings, metering months, vote, measures...) were met; otherwise ``not_yet``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from buildings.retrofit import NON_ENERGY_MEASURES, MilestoneState, Stage, stage_complete
from buildings.subsidy.messages import TEXT, TODO_FOR, Msg, Todo
from buildings.subsidy.policy import FIELDS, All, Amount, AmountType, AnyOf, Condition, Not, Policy, Rule
from buildings.subsidy.status import ConditionStatus, TrancheState, Verdict

PASS, FAIL, UNKNOWN = ConditionStatus.PASS, ConditionStatus.FAIL, ConditionStatus.UNKNOWN
NO_DATA = Msg("ev.no_data")


@dataclass(frozen=True)
class Fact:
    """A value with its evidence: which data it came from and for which period."""

    value: Any
    evidence: str | Msg  # a Msg is rendered in the reader's language; a str is shown as it is


@dataclass(frozen=True)
class ConditionResult:
    path: str
    field: str
    op: str
    expected: Any
    status: ConditionStatus
    actual: Any
    evidence: str
    static: bool
    provenance: str | None
    negated: bool = False  # inside a `not`: this condition must FAIL for the rule to pass
    evidence_msg: Msg | None = None  # the evidence as a message key and parameters (``evidence`` in English)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["evidence_msg"] = None if self.evidence_msg is None else self.evidence_msg.as_dict()
        for k in ("expected", "actual"):
            if isinstance(d[k], dt.date):
                d[k] = d[k].isoformat()
        return d


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return actual is not None and actual != "" and actual is not False
    if op == "==":
        return actual == expected
    if op == "!=":
        return actual != expected
    if op == "in":
        if isinstance(actual, list | tuple | set | frozenset):
            return any(a in expected for a in actual)
        return actual in expected
    if op == "not_in":
        if isinstance(actual, list | tuple | set | frozenset):
            return not any(a in expected for a in actual)
        return actual not in expected
    if op == "contains":
        return expected in actual
    if isinstance(expected, dt.date) and isinstance(actual, str):
        actual = dt.date.fromisoformat(actual)
    return {">=": actual >= expected, "<=": actual <= expected, ">": actual > expected, "<": actual < expected}[op]


def _eval(rule: Rule, facts: Mapping[str, Fact], path: str, out: list[ConditionResult],
          assume_attainable: bool = False, negated: bool = False) -> ConditionStatus:
    if isinstance(rule, Condition):
        spec = FIELDS[rule.field]
        fact = facts.get(rule.field)
        if fact is None or (fact.value is None and rule.op != "exists"):
            status = UNKNOWN
        else:
            try:
                status = PASS if _compare(rule.op, fact.value, rule.value) else FAIL
            except TypeError:
                status = FAIL
        if assume_attainable and not spec.static and status != PASS:
            status = PASS
        if not assume_attainable:
            prov = rule.provenance
            ev = NO_DATA if fact is None else fact.evidence
            msg = ev if isinstance(ev, Msg) else Msg("ev.text", {"text": ev})
            out.append(ConditionResult(
                path=path, field=rule.field, op=rule.op, expected=rule.value, status=status,
                actual=None if fact is None else fact.value,
                evidence=str(ev), static=spec.static,
                provenance=None if prov is None else f"{prov.status}: {prov.source or prov.note or ''}".strip(),
                negated=negated, evidence_msg=msg))
        return status
    if isinstance(rule, All):
        rs = [_eval(r, facts, f"{path}.all[{i}]", out, assume_attainable, negated) for i, r in enumerate(rule.all)]
        return FAIL if FAIL in rs else UNKNOWN if UNKNOWN in rs else PASS
    if isinstance(rule, AnyOf):
        rs = [_eval(r, facts, f"{path}.any[{i}]", out, assume_attainable, negated) for i, r in enumerate(rule.any)]
        return PASS if PASS in rs else UNKNOWN if UNKNOWN in rs else FAIL
    assert isinstance(rule, Not)
    if assume_attainable:
        inner = _eval(rule.not_, facts, path + ".not", [], False)
        inner_static = _all_static(rule.not_)
        r = {PASS: FAIL, FAIL: PASS, UNKNOWN: UNKNOWN}[inner]
        return r if inner_static else PASS
    r = _eval(rule.not_, facts, f"{path}.not", out, assume_attainable, not negated)
    return {PASS: FAIL, FAIL: PASS, UNKNOWN: UNKNOWN}[r]


def _blockers(rule: Rule, facts: Mapping[str, Fact]) -> list[str]:
    """What stands between the building and a passing rule, in words (only the branches that matter)."""
    if _eval(rule, facts, "", []) == PASS:
        return []
    if isinstance(rule, Condition):
        fact = facts.get(rule.field)
        fixed = " (a fixed fact: cannot be changed)" if FIELDS[rule.field].static else ""
        if fact is None or (fact.value is None and rule.op != "exists"):
            return [f"{rule.field}: no data ({FIELDS[rule.field].doc}){fixed}"]
        want = "must exist" if rule.op == "exists" else f"needs {rule.op} {rule.value!r}"
        return [f"{rule.field}: {want}, has {fact.value!r}{fixed}"]
    if isinstance(rule, All):
        return [b for r in rule.all for b in _blockers(r, facts)]
    if isinstance(rule, AnyOf):
        opts = [" and ".join(_blockers(r, facts)) for r in rule.any]
        return ["one of: " + " | ".join(f"[{o}]" for o in opts)]
    inner = rule.not_
    if isinstance(inner, Condition):
        fact = facts.get(inner.field)
        has = "no data" if fact is None else repr(fact.value)
        return [f"{inner.field}: must not be {inner.op} {inner.value!r}, has {has}"]
    return ["a `not` rule holds that must not"]


def todos(rule: Rule, facts: Mapping[str, Fact], groups: list[int] | None = None) -> list[Todo]:
    """What must happen for the rule to pass, as to-dos with who acts (only the branches that matter)."""
    groups = groups if groups is not None else [0]
    if _eval(rule, facts, "", []) == PASS:
        return []
    if isinstance(rule, Condition):
        return [_condition_todo(rule, facts.get(rule.field))]
    if isinstance(rule, All):
        return [t for r in rule.all for t in todos(r, facts, groups)]
    if isinstance(rule, AnyOf):
        groups[0] += 1
        n = groups[0]
        return [replace(t, group=n, branch=b) for b, r in enumerate(rule.any) for t in todos(r, facts, groups)]
    inner = rule.not_
    if isinstance(inner, Condition):
        fact = facts.get(inner.field)
        args = {"field": inner.field, "need": inner.value, "has": None if fact is None else fact.value}
        if fact is None and inner.field in TODO_FOR:  # no data yet: the task is to provide it
            key, actor, page = TODO_FOR[inner.field]
            return [Todo(Msg(key, args), actor, page)]
        return [Todo(Msg("todo.must_not", args), "owner", TODO_FOR.get(inner.field, ("", "", None))[2])]
    return [Todo(Msg("todo.not_rule"), "owner")]


def _condition_todo(rule: Condition, fact: Fact | None) -> Todo:
    """One failing or unknown condition as a to-do; a fixed fact that fails is a reason, not a task."""
    has = None if fact is None else fact.value
    args = {"field": rule.field, "need": rule.value, "has": has}
    if FIELDS[rule.field].static:
        if has is None:
            return Todo(Msg("todo.fixed_unknown", args), "owner")
        if rule.field == "policy.open":
            return Todo(Msg("todo.policy_closed"), None, fixed=True)
        if rule.field == "building.in_jurisdiction":
            return Todo(Msg("todo.outside_jurisdiction"), None, fixed=True)
        return Todo(Msg("todo.fixed", args), None, fixed=True)
    key, actor, page = TODO_FOR.get(rule.field, ("todo.provide", "owner", None))
    if has is None and f"{key}_none" in TEXT:  # nothing yet: say so rather than "now —"
        key = f"{key}_none"
    return Todo(Msg(key, args), actor, page)


def _all_static(rule: Rule) -> bool:
    if isinstance(rule, Condition):
        return FIELDS[rule.field].static
    if isinstance(rule, All):
        return all(_all_static(r) for r in rule.all)
    if isinstance(rule, AnyOf):
        return all(_all_static(r) for r in rule.any)
    return _all_static(rule.not_)


def jurisdiction_fact(policy: Policy, facts: Mapping[str, Fact]) -> Fact:
    j = policy.jurisdiction
    code = facts.get("building.district_code")
    country = facts.get("building.country")
    if j.level == "foreign" or j.level == "central":
        ok = country is not None and country.value == j.code
        return Fact(ok, Msg("ev.jurisdiction_country", {"country": country.value if country else "?", "code": j.code}))
    if code is None:
        return Fact(None, Msg("ev.no_district_code"))
    prefix = j.code.rstrip("0") if j.level == "municipal" else j.code
    if j.level == "municipal" and len(prefix) % 2:
        prefix += "0"
    return Fact(str(code.value).startswith(prefix), Msg("ev.jurisdiction_district", {
        "code": code.value, "level": str(j.level), "jcode": j.code, "prefix": prefix}))


@dataclass
class ProjectInputs:
    """What the amount and tranche logic needs of a project."""

    project_id: str | None
    retrofit_area_m2: float | None
    verified_area_m2: float | None = None
    measures: Sequence[tuple[str, float]] = ()  # (category, capex)
    target_saving: float | None = None
    measured_saving: float | None = None  # only an adequate measured result belongs here
    measured_evidence: str = ""
    rating: str | None = None
    milestones: Sequence[MilestoneState] = ()
    docs_on_file: frozenset[str] = frozenset()
    paid_by_seq: Mapping[int, float] = field(default_factory=dict)
    owner_other_assessed: float = 0.0  # this owner's other applications under the same policy

    @property
    def total_cost(self) -> float:
        return float(sum(c for _, c in self.measures))

    def cost_of(self, which: str) -> float:
        if which == "energy":
            return float(sum(c for k, c in self.measures if k not in NON_ENERGY_MEASURES))
        if which == "non_energy":
            return float(sum(c for k, c in self.measures if k in NON_ENERGY_MEASURES))
        return self.total_cost


@dataclass
class AmountEstimate:
    currency: str
    gross: float | None
    capped: float | None
    final: bool  # based on measured savings and verified area, not on targets
    lines: list[str]
    caps_applied: list[str]

    def as_dict(self) -> dict:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return {"currency": self.currency, "gross": r(self.gross), "capped": r(self.capped), "final": self.final,
                "lines": self.lines, "caps_applied": self.caps_applied}


def _part(a: Amount, p: ProjectInputs, policies: Mapping[str, Policy], lines: list[str]) -> tuple[float | None, bool]:
    """Amount of one formula part and whether it rests on verified numbers."""
    if a.type == AmountType.TIERED_RATE_PER_AREA:
        final = p.measured_saving is not None
        saving = p.measured_saving if final else p.target_saving
        area = p.verified_area_m2 if a.basis == "verified_area_m2" and p.verified_area_m2 else p.retrofit_area_m2
        if a.basis == "verified_area_m2" and not p.verified_area_m2:
            final = False
        if saving is None or area is None:
            lines.append("per-m2 part: no savings figure or area yet")
            return None, False
        tier = next((t for t in sorted(a.tiers or [], key=lambda t: -t.min)
                     if saving >= t.min and (t.max is None or saving < t.max)), None)
        src = "measured" if p.measured_saving is not None else "target"
        if tier is None:
            lines.append(f"per-m2 part: {src} saving {saving:.1%} is below the lowest band -> 0")
            return 0.0, final
        v = area * tier.rate
        lines.append(f"per-m2 part: {area:,.0f} m2 x {tier.rate:g}/m2 (band {tier.min:.0%}"
                     f"{'-' + format(tier.max, '.0%') if tier.max else '+'}, {src} saving {saving:.1%}) = {v:,.0f}")
        return v, final
    if a.type == AmountType.PCT_OF_COST:
        cost = p.cost_of(a.measures)
        v = cost * (a.rate or 0)
        lines.append(f"cost part: {a.rate:.0%} of {a.measures} measure cost {cost:,.0f} = {v:,.0f}")
        return v, True
    if a.type == AmountType.MATCH:
        other = policies.get(a.policy_id or "")
        if other is None:
            lines.append(f"match part: policy {a.policy_id} not loaded")
            return None, False
        sub = estimate(other, p, policies)
        if sub.capped is None:
            lines.append(f"match part: {a.policy_id} amount unknown")
            return None, False
        v = sub.capped * (a.rate or 0)
        lines.append(f"match part: {a.rate:g} x {a.policy_id} amount {sub.capped:,.0f} = {v:,.0f}")
        return v, sub.final
    if a.type == AmountType.FUNDING_FACTOR_X_CARBON:
        if a.rate is None:
            lines.append("carbon part: the funding factor is not published, the amount cannot be estimated")
            return None, False
        lines.append("carbon part: no verified tCO2 reduction recorded")
        return None, False
    total, final = 0.0, True
    for sub in a.parts or []:
        v, f = _part(sub, p, policies, lines)
        if v is None:
            return None, False
        total += v
        final = final and f
    return total, final


def estimate(policy: Policy, p: ProjectInputs, policies: Mapping[str, Policy]) -> AmountEstimate:
    """The amount by the policy's formula, then every cap: per project, % of eligible cost, per owner, rating."""
    lines: list[str] = []
    gross, final = _part(policy.amount, p, policies, lines)
    tightest: list[str] = []
    limit = cap_limit(policy, p, tightest)
    capped = None if gross is None else min(gross, limit)
    caps_applied: list[str] = []
    if gross is not None and capped is not None and capped < gross:
        lines.append(f"capped from {gross:,.0f} to {capped:,.0f} ({tightest[0]})")
        caps_applied = tightest
    elif tightest:
        lines.append(f"under the tightest cap: {tightest[0]} = {limit:,.0f}")
    return AmountEstimate(policy.currency, gross, capped, final, lines, caps_applied)


def cap_limit(policy: Policy, p: ProjectInputs, applied: list[str] | None = None) -> float:
    """The most this project may receive under the policy, from every cap (inf when there is none)."""
    applied = applied if applied is not None else []
    c = policy.caps
    limits: list[tuple[float, str]] = []
    if c.abs_max is not None:
        limits.append((c.abs_max, f"per project {c.abs_max:,.0f}"))
    if c.pct_of_eligible_cost_max is not None:
        limits.append((c.pct_of_eligible_cost_max * p.total_cost,
                       f"{c.pct_of_eligible_cost_max:.0%} of eligible cost {p.total_cost:,.0f}"))
    if c.per_owner_max is not None:
        limits.append((max(c.per_owner_max - p.owner_other_assessed, 0.0),
                       f"per owner {c.per_owner_max:,.0f} less {p.owner_other_assessed:,.0f} on other projects"))
    if c.abs_max_by_rating:
        if p.rating in c.abs_max_by_rating:
            limits.append((c.abs_max_by_rating[p.rating], f"rating {p.rating} cap"))
        else:
            limits.append((max(c.abs_max_by_rating.values()), "highest rating cap (no rating target)"))
    if not limits:
        return float("inf")
    v, why = min(limits, key=lambda x: x[0])
    applied.append(why)
    return v


@dataclass(frozen=True)
class TrancheStatus:
    seq: int
    pct: float
    basis: str
    trigger_stage: str
    amount: float | None
    paid: float
    status: TrancheState
    missing: list[str]
    needs: tuple[Todo, ...] = ()  # ``missing`` as to-dos

    def as_dict(self) -> dict:
        return {**self.__dict__, "amount": None if self.amount is None else round(self.amount, 2),
                "needs": [n.as_dict() for n in self.needs]}


def tranches(policy: Policy, p: ProjectInputs, amount: float | None) -> list[TrancheStatus]:
    """Each staged payment: its share of the amount, and whether its stage and documents are in place."""
    out = []
    for t in policy.tranches:
        missing: list[str] = []
        needs: list[Todo] = []
        if not stage_complete(p.milestones, Stage(t.trigger_stage)):
            missing.append(f"stage {t.trigger_stage} not complete")
            needs.append(Todo(Msg("todo.stage", {"stage": t.trigger_stage, "seq": t.seq}), "owner", "retrofit"))
        docs = [d for d in t.required_docs if d not in p.docs_on_file]
        missing += [f"document {d}" for d in docs]
        needs += [Todo(Msg("todo.document", {"doc": d, "seq": t.seq}), "owner", "retrofit") for d in docs]
        paid = float(p.paid_by_seq.get(t.seq, 0.0))
        share = None if amount is None else amount * t.pct / 100
        status = (TrancheState.PAID if share is not None and paid >= share - 0.005 and paid > 0 else
                  TrancheState.PAYABLE if not missing and share is not None else TrancheState.LOCKED)
        out.append(TrancheStatus(t.seq, t.pct, t.basis, t.trigger_stage, share, paid, status, missing, tuple(needs)))
    return out


@dataclass
class Eligibility:
    policy_id: str
    building_id: str
    project_id: str | None
    as_of: dt.date
    verdict: Verdict
    conditions: list[ConditionResult]
    missing: list[str]
    amount: AmountEstimate
    tranches: list[TrancheStatus]
    todo: list[Todo] = field(default_factory=list)  # ``missing`` as to-dos with who acts

    def as_dict(self) -> dict:
        return {"policy_id": self.policy_id, "building_id": self.building_id, "project_id": self.project_id,
                "as_of": self.as_of.isoformat(), "verdict": self.verdict,
                "conditions": [c.as_dict() for c in self.conditions], "missing": self.missing,
                "amount": self.amount.as_dict(), "tranches": [t.as_dict() for t in self.tranches],
                "todo": [t.as_dict() for t in self.todo]}


def evaluate(policy: Policy, building_id: str, facts: Mapping[str, Fact], project: ProjectInputs,
             policies: Mapping[str, Policy], as_of: dt.date) -> Eligibility:
    """Evaluate one policy for one building (and its project)."""
    f = dict(facts)
    open_ = policy.valid_from <= as_of and (policy.valid_to is None or as_of <= policy.valid_to)
    f["policy.open"] = Fact(open_, Msg("ev.policy_valid", {"start": policy.valid_from, "end": policy.valid_to,
                                                           "as_of": as_of}) if policy.valid_to else
                            Msg("ev.policy_valid_open", {"start": policy.valid_from, "as_of": as_of}))
    f["building.in_jurisdiction"] = jurisdiction_fact(policy, f)
    results: list[ConditionResult] = []
    root = _eval(policy.eligibility, f, "eligibility", results)
    if root == PASS:
        verdict = Verdict.ELIGIBLE
    else:
        could = _eval(policy.eligibility, f, "eligibility", [], assume_attainable=True)
        verdict = Verdict.NOT_YET if could == PASS else Verdict.NOT_ELIGIBLE
    missing = _blockers(policy.eligibility, f)
    amount = estimate(policy, project, policies)
    if verdict is Verdict.NOT_ELIGIBLE:
        amount = AmountEstimate(policy.currency, None, None, False, ["not eligible: no amount"], [])
    tr = tranches(policy, project, amount.capped)
    missing += [f"tranche {t.seq}: {m}" for t in tr if t.status is TrancheState.LOCKED for m in t.missing
                if verdict is not Verdict.NOT_ELIGIBLE]
    todo = todos(policy.eligibility, f)
    if verdict is Verdict.NOT_ELIGIBLE:
        todo = [t for t in todo if t.fixed]  # why it is out of reach; nothing to do
    else:
        todo += [n for t in tr if t.status is TrancheState.LOCKED for n in t.needs]
    return Eligibility(policy.id, building_id, project.project_id, as_of, verdict, results, missing, amount, tr,
                       todo)
