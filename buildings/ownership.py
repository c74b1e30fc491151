"""Ownership: concentration from shares, and the owners' vote of Civil Code art. 278.

Shares are by exclusive area (专有部分面积), as the Civil Code counts them. A share row may stand for several
owners (``count``, e.g. "3F unit owners (14 individuals)"): it is split evenly among them for the headcount and
the concentration measures.

Civil Code (2021) art. 278: matters decided jointly by the owners need owners holding two thirds or more of the
exclusive area AND two thirds or more of the owners to take part in the vote. Raising the maintenance fund,
rebuilding or altering the building and its facilities, and changing the use of common parts (items 6-8) need
three quarters or more of the participating area AND of the participating owners to agree; the other matters
need more than half of both. ("以上" includes the bound; "过半数" is strictly more than half.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field

from buildings.strict import Strict

EPS = 1e-9


class OwnershipError(ValueError):
    """Shares or votes that do not make sense; the message names the rows and says what to fix."""


class StructureClass(StrEnum):
    SINGLE = "single"
    CONCENTRATED = "concentrated"
    FRAGMENTED = "fragmented"


class ConcentrationThresholds(Strict):
    """Where concentrated ends and fragmented begins. Policy data (buildings/policies/_defaults.yaml)."""

    concentrated_top3_share_min: float = Field(default=0.67, gt=0, le=1)
    concentrated_owner_count_max: int = Field(default=5, ge=1)


@dataclass(frozen=True)
class ShareRow:
    """One row of a building's ownership: an owner (or a group of ``count`` owners) and its exclusive area."""

    owner: str
    area_m2: float
    count: int = 1
    name: str = ""
    kind: str = ""


@dataclass(frozen=True)
class Concentration:
    owner_count: int
    total_area_m2: float
    top_share: float
    top3_share: float
    hhi: float  # sum of squared shares, 0..1 (1 = single owner)
    structure_class: StructureClass

    def as_dict(self) -> dict:
        return {"owner_count": self.owner_count, "total_area_m2": round(self.total_area_m2, 2),
                "top_share": round(self.top_share, 4), "top3_share": round(self.top3_share, 4),
                "hhi": round(self.hhi, 4), "structure_class": self.structure_class.value}


def validate_shares(rows: Sequence[ShareRow], gross_floor_area_m2: float | None = None,
                    share_pct: Sequence[float] | None = None, where: str = "") -> None:
    """Refuse shares that do not add up: non-positive areas, duplicate owners, areas above the floor area,
    or stated percentages that do not sum to 100 or disagree with the areas."""
    pre = f"{where}: " if where else ""
    if not rows:
        raise OwnershipError(f"{pre}a building needs at least one owner share")
    seen: set[str] = set()
    for i, r in enumerate(rows):
        if r.area_m2 <= 0 or r.count < 1:
            raise OwnershipError(f"{pre}share row {i + 1} ({r.owner}): area_m2 must be > 0 and count >= 1")
        if r.owner in seen:
            raise OwnershipError(f"{pre}owner {r.owner!r} appears twice; merge the rows")
        seen.add(r.owner)
    total = sum(r.area_m2 for r in rows)
    if gross_floor_area_m2 is not None and total > gross_floor_area_m2 * (1 + 1e-4):
        raise OwnershipError(f"{pre}owners' exclusive areas add up to {total:,.1f} m2, more than the gross floor "
                             f"area {gross_floor_area_m2:,.1f} m2; check each owner's area")
    if share_pct is not None:
        s = sum(share_pct)
        if abs(s - 100) > 0.5:
            raise OwnershipError(f"{pre}share percentages add up to {s:.2f} %, not 100 %; fix the share_pct column")
        for r, p in zip(rows, share_pct, strict=True):
            if abs(100 * r.area_m2 / total - p) > 0.5:
                raise OwnershipError(f"{pre}owner {r.owner!r}: share_pct {p:.2f} % disagrees with its area "
                                     f"({100 * r.area_m2 / total:.2f} % of the exclusive area)")


def concentration(rows: Sequence[ShareRow], thresholds: ConcentrationThresholds | None = None) -> Concentration:
    """Owner count, top and top-3 share, HHI and the structure class (single / concentrated / fragmented)."""
    validate_shares(rows)
    th = thresholds or ConcentrationThresholds()
    total = sum(r.area_m2 for r in rows)
    each = sorted((r.area_m2 / r.count / total for r in rows for _ in range(r.count)), reverse=True)
    n = len(each)
    top3 = sum(each[:3])
    if n == 1:
        cls = StructureClass.SINGLE
    elif top3 >= th.concentrated_top3_share_min - EPS or n <= th.concentrated_owner_count_max:
        cls = StructureClass.CONCENTRATED
    else:
        cls = StructureClass.FRAGMENTED
    return Concentration(owner_count=n, total_area_m2=total, top_share=each[0], top3_share=top3,
                         hhi=sum(s * s for s in each), structure_class=cls)


def art278_vote_required(owner_count: int, scope_common_parts: bool) -> bool:
    """Works on shared parts of a building with more than one owner need the owners' joint decision."""
    return owner_count > 1 and scope_common_parts


class Matter(StrEnum):
    """The matters of art. 278 para. 1, items 1-9."""

    RULES_OF_PROCEDURE = "rules_of_procedure"  # 1
    MANAGEMENT_RULES = "management_rules"  # 2
    OWNERS_COMMITTEE = "owners_committee"  # 3
    PROPERTY_MANAGER = "property_manager"  # 4
    USE_MAINTENANCE_FUND = "use_maintenance_fund"  # 5
    RAISE_MAINTENANCE_FUND = "raise_maintenance_fund"  # 6
    REBUILD_OR_ALTER = "rebuild_or_alter"  # 7 (a retrofit of shared plant and parts)
    CHANGE_COMMON_PARTS_USE = "change_common_parts_use"  # 8
    OTHER_MAJOR = "other_major"  # 9


SPECIAL_MATTERS = frozenset({Matter.RAISE_MAINTENANCE_FUND, Matter.REBUILD_OR_ALTER, Matter.CHANGE_COMMON_PARTS_USE})


class Choice(StrEnum):
    FOR = "for"
    AGAINST = "against"
    ABSTAIN = "abstain"


@dataclass(frozen=True)
class Vote:
    """A recorded vote of a share row (or of ``count`` of the owners a row stands for)."""

    owner: str
    choice: Choice
    count: int | None = None  # None = every owner of the row


@dataclass(frozen=True)
class VoteResult:
    matter: Matter
    area_participation: float
    headcount_participation: float
    area_approval: float  # share of the participating area that voted for
    headcount_approval: float
    quorum: bool
    approved: bool
    approval_rule: str
    reason: str

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else str(v) if isinstance(v, StrEnum) else v)
                for k, v in self.__dict__.items()}


def tally(rows: Sequence[ShareRow], votes: Sequence[Vote], matter: Matter = Matter.REBUILD_OR_ALTER) -> VoteResult:
    """Quorum and approval of an owners' vote by area and by headcount (art. 278 para. 2)."""
    validate_shares(rows)
    by_owner = {r.owner: r for r in rows}
    total_area = sum(r.area_m2 for r in rows)
    total_heads = sum(r.count for r in rows)
    voted: dict[str, int] = {}
    area_in = heads_in = area_for = heads_for = 0.0
    for v in votes:
        row = by_owner.get(v.owner)
        if row is None:
            raise OwnershipError(f"vote by {v.owner!r}, who holds no share in this building; "
                                 f"known owners: {', '.join(sorted(by_owner))}")
        n = row.count if v.count is None else v.count
        voted[v.owner] = voted.get(v.owner, 0) + n
        if n < 1 or voted[v.owner] > row.count:
            raise OwnershipError(f"owner row {v.owner!r} stands for {row.count} owner(s) but {voted[v.owner]} "
                                 f"votes were recorded for it")
        area = row.area_m2 * n / row.count
        area_in += area
        heads_in += n
        if v.choice == Choice.FOR:
            area_for += area
            heads_for += n
    part_a, part_h = area_in / total_area, heads_in / total_heads
    quorum = part_a >= 2 / 3 - EPS and part_h >= 2 / 3 - EPS
    appr_a = area_for / area_in if area_in else 0.0
    appr_h = heads_for / heads_in if heads_in else 0.0
    if matter in SPECIAL_MATTERS:
        rule = ">= 3/4 of participating area and >= 3/4 of participating owners"
        agree = appr_a >= 3 / 4 - EPS and appr_h >= 3 / 4 - EPS
    else:
        rule = "> 1/2 of participating area and > 1/2 of participating owners"
        agree = appr_a > 1 / 2 + EPS and appr_h > 1 / 2 + EPS
    if not quorum:
        reason = (f"no quorum: {part_a:.1%} of the area and {part_h:.1%} of the owners took part; "
                  f"art. 278 needs two thirds of both")
    elif not agree:
        reason = f"not approved: {appr_a:.1%} of the area and {appr_h:.1%} of the owners agreed; needs {rule}"
    else:
        reason = f"approved: {appr_a:.1%} of the participating area and {appr_h:.1%} of the owners agreed ({rule})"
    return VoteResult(matter=matter, area_participation=part_a, headcount_participation=part_h,
                      area_approval=appr_a, headcount_approval=appr_h, quorum=quorum,
                      approved=quorum and agree, approval_rule=rule, reason=reason)
