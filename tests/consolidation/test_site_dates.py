"""An impossible date in a site file is a SiteError naming the file, line and field, like every other problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildings.site import SiteError, load_site

SAMPLE = Path(__file__).resolve().parents[2] / "buildings" / "sites" / "yuzhong" / "huaxin-building.yaml"


def _problems(path: Path) -> list[str]:
    with pytest.raises(SiteError) as err:
        load_site(str(path))
    return [str(p) for p in err.value.problems]


def test_impossible_month_names_file_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "b.yaml"
    f.write_text("building:\n  id: test-b\n  name: {zh: 测试, en: Test}\n  built: 2025-13-01\n", "utf-8")
    (problem,) = _problems(f)
    assert problem.startswith(f"{f}:4: building.built: ") and "month must be in 1..12" in problem


def test_impossible_holiday_in_the_sample_building(tmp_path: Path) -> None:
    lines = SAMPLE.read_text("utf-8").splitlines(keepends=True)
    n = next(i for i, ln in enumerate(lines) if "2026-01-02" in ln)
    lines[n] = lines[n].replace("2026-01-02", "2026-02-30")
    f = tmp_path / SAMPLE.name
    f.write_text("".join(lines), "utf-8")
    (problem,) = _problems(f)
    assert problem.startswith(f"{f}:{n + 1}: ") and "holidays[" in problem and "day is out of range" in problem


def test_the_unchanged_sample_still_loads() -> None:
    assert load_site(str(SAMPLE)).buildings[0].id == "huaxin-building"
