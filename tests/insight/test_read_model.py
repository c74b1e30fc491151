"""The read model (insight.retrofit) on the sample programme: typed, frozen views with the one StrEnum
vocabulary, and owner scoping on every function."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from buildings.access import Principal, Role, ScopeDenied, Unavailable
from buildings.site import Site, load_site
from buildings.subsidy.status import ConditionStatus, TrancheState, Verdict
from insight import retrofit as records
from insight.scope import Scope


@pytest.fixture(scope="module")
def site(sample_site_path: Path) -> Site:
    return load_site(str(sample_site_path))


@pytest.fixture(scope="module")
def engine(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    from buildings.records.program import import_sample

    e = import_sample(f"sqlite:///{tmp_path_factory.mktemp('rm') / 'records.db'}", site, "tests")
    yield e
    e.dispose()


def _scope(site: Site, engine: Engine | None, role: Role = Role.DISTRICT, owner: str | None = None) -> Scope:
    return Scope(principal=Principal("u", role, owner), site=site, engine=engine)


def test_subsidy_assessments_speak_the_engine_vocabulary(site: Site, engine: Engine) -> None:
    out = records.subsidies(_scope(site, engine), "jiefangbei-tower")
    assert out and all(isinstance(a.verdict, Verdict) for a in out)
    conds = [c for a in out for c in a.conditions]
    assert conds and {c.status for c in conds} <= set(ConditionStatus)
    assert all(type(c.status) is ConditionStatus for c in conds)  # the engine's own vocabulary, not a renamed copy
    a = out[0]
    assert a.eligible == (a.verdict is Verdict.ELIGIBLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.verdict = Verdict.ELIGIBLE  # type: ignore[misc]


def test_tranches_speak_the_engine_vocabulary(site: Site, engine: Engine) -> None:
    from buildings.records import queries as q

    with _scope(site, engine).records() as s:
        e = q.eligibility(s, "jiefangbei-tower", "CQ-YZ-OLDBLDG-SMART-DEMO")
    assert e.tranches and all(isinstance(t.status, TrancheState) for t in e.tranches)
    assert isinstance(e.verdict, Verdict)


def test_projects_status_and_ranking(site: Site, engine: Engine) -> None:
    sc = _scope(site, engine)
    projects = records.projects(sc)
    assert {p.building for p in projects} >= {"jiefangbei-tower", "daping-makerworks"}
    jfb = next(p for p in projects if p.building == "jiefangbei-tower")
    assert jfb.milestones and all(m.start and m.end for m in jfb.milestones) and 0 <= jfb.progress <= 1
    assert jfb.savings_kwh == pytest.approx(1_480_000)  # the programme's recorded M&V result
    status = records.records_status(sc)
    assert status["jiefangbei-tower"].stage.zh and status["jiefangbei-tower"].subsidy.en != "none"
    rec = records.recorded_savings(sc, "daping-makerworks")
    assert rec is not None and rec.model == "3PC" and not rec.adequate
    ranking = records.ranking(sc)
    assert [r.rank for r in ranking] == sorted(r.rank for r in ranking)
    assert all(r.best_verdict is None or isinstance(r.best_verdict, Verdict) for r in ranking)


def test_owner_sees_only_its_buildings(site: Site, engine: Engine) -> None:
    alice = _scope(site, engine, Role.OWNER, "yuxin-property")
    assert {p.building for p in records.projects(alice)} == {"jiefangbei-tower"}
    assert set(records.records_status(alice)) == {"jiefangbei-tower"}
    for call in (lambda: records.subsidies(alice, "daping-makerworks"),
                 lambda: records.recorded_savings(alice, "daping-makerworks"),
                 lambda: records.project_rows(alice, "daping-makerworks"),
                 lambda: records.ranking(alice)):  # the ranking is the district's
        with pytest.raises(ScopeDenied):
            call()


def test_no_records_database_is_unavailable_not_a_traceback(site: Site) -> None:
    with pytest.raises(Unavailable, match="records database"):
        records.projects(_scope(site, None))
