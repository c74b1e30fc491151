"""Fixtures for the physics tests: the sample district and a shared physics (seed 0)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from buildings.site import Site, load_site
from simulators.points import SitePhysics

SAMPLE = Path(__file__).resolve().parents[2] / "buildings" / "sites" / "yuzhong"


def local_day(y: int, m: int, d: int) -> int:
    """Local day index (days since 1970-01-01) as BuildingModel.grid takes it."""
    return (dt.date(y, m, d) - dt.date(1970, 1, 1)).days


def epoch(y: int, m: int, d: int, h: float = 0.0) -> float:
    """UTC epoch seconds of a Chongqing local time."""
    return dt.datetime(y, m, d, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp() + h * 3600


@pytest.fixture(scope="session")
def site() -> Site:
    return load_site(str(SAMPLE))


@pytest.fixture(scope="session")
def physics(site: Site) -> SitePhysics:
    return SitePhysics(site, seed=0)
