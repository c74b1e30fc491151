"""Ownership concentration and the Civil Code art. 278 vote (pure functions)."""

from __future__ import annotations

import pytest

from buildings.ownership import (
    Choice,
    ConcentrationThresholds,
    Matter,
    OwnershipError,
    ShareRow,
    StructureClass,
    Vote,
    art278_vote_required,
    concentration,
    tally,
    validate_shares,
)


def test_single_concentrated_fragmented() -> None:
    assert concentration([ShareRow("a", 1000)]).structure_class is StructureClass.SINGLE
    c = concentration([ShareRow("a", 600), ShareRow("b", 300), ShareRow("c", 100)])
    assert c.structure_class is StructureClass.CONCENTRATED and c.owner_count == 3
    assert c.top_share == pytest.approx(0.6) and c.hhi == pytest.approx(0.36 + 0.09 + 0.01)
    # 1 big owner + 40 small ones: top-3 share 0.5 + 2 x 0.0125 = 0.525 < 0.67 and 41 owners > 5
    frag = concentration([ShareRow("big", 500), ShareRow("units", 500, count=40)])
    assert frag.owner_count == 41 and frag.structure_class is StructureClass.FRAGMENTED
    assert frag.top3_share == pytest.approx(0.525)


def test_thresholds_are_data() -> None:
    rows = [ShareRow("big", 500), ShareRow("units", 500, count=40)]
    loose = ConcentrationThresholds(concentrated_top3_share_min=0.5)
    assert concentration(rows, loose).structure_class is StructureClass.CONCENTRATED


def test_shares_that_do_not_add_up() -> None:
    with pytest.raises(OwnershipError, match="more than the gross floor area"):
        validate_shares([ShareRow("a", 800), ShareRow("b", 300)], gross_floor_area_m2=1000)
    with pytest.raises(OwnershipError, match="add up to 90.00 %"):
        validate_shares([ShareRow("a", 600), ShareRow("b", 400)], share_pct=[50, 40])
    with pytest.raises(OwnershipError, match="disagrees with its area"):
        validate_shares([ShareRow("a", 600), ShareRow("b", 400)], share_pct=[40, 60])
    with pytest.raises(OwnershipError, match="appears twice"):
        validate_shares([ShareRow("a", 600), ShareRow("a", 400)])
    with pytest.raises(OwnershipError, match="area_m2 must be > 0"):
        validate_shares([ShareRow("a", 0)])


def test_vote_required() -> None:
    assert not art278_vote_required(1, True)
    assert not art278_vote_required(5, False)
    assert art278_vote_required(2, True)


ROWS = [ShareRow("a", 400), ShareRow("b", 300), ShareRow("c", 200), ShareRow("d", 100)]


def test_quorum_needs_two_thirds_of_area_and_headcount() -> None:
    # a + b voted: 70 % of the area but only 2 of 4 owners -> no quorum
    r = tally(ROWS, [Vote("a", Choice.FOR), Vote("b", Choice.FOR)])
    assert not r.quorum and not r.approved and "no quorum" in r.reason
    # b + c + d: 3 of 4 owners but 60 % of the area -> no quorum
    r = tally(ROWS, [Vote(o, Choice.FOR) for o in "bcd"])
    assert not r.quorum


def test_special_matter_needs_three_quarters_ordinary_more_than_half() -> None:
    votes = [Vote("a", Choice.FOR), Vote("b", Choice.FOR), Vote("c", Choice.AGAINST), Vote("d", Choice.FOR)]
    special = tally(ROWS, votes, Matter.REBUILD_OR_ALTER)
    assert special.quorum and special.area_approval == pytest.approx(0.8)
    assert special.headcount_approval == pytest.approx(0.75) and special.approved  # exactly 3/4 counts
    votes[3] = Vote("d", Choice.AGAINST)  # area 70 %, headcount 50 %
    assert not tally(ROWS, votes, Matter.REBUILD_OR_ALTER).approved
    # ordinary matters need MORE than half of both: 2 of 4 owners is not more than half
    assert not tally(ROWS, votes, Matter.PROPERTY_MANAGER).approved
    votes[2] = Vote("c", Choice.FOR)
    assert tally(ROWS, [*votes[:3], Vote("d", Choice.AGAINST)], Matter.PROPERTY_MANAGER).approved


def test_group_rows_vote_in_parts_and_bad_votes_refused() -> None:
    rows = [ShareRow("big", 300), ShareRow("units", 700, count=7)]
    r = tally(rows, [Vote("big", Choice.FOR), Vote("units", Choice.FOR, count=5), Vote("units", Choice.AGAINST, 1)])
    assert r.headcount_participation == pytest.approx(7 / 8) and r.area_participation == pytest.approx(0.9)
    assert r.area_approval == pytest.approx(0.8 / 0.9) and r.headcount_approval == pytest.approx(6 / 7)
    with pytest.raises(OwnershipError, match="stands for 7 owner"):
        tally(rows, [Vote("units", Choice.FOR, count=5), Vote("units", Choice.FOR, count=3)])
    with pytest.raises(OwnershipError, match="holds no share"):
        tally(rows, [Vote("stranger", Choice.FOR)])
