"""The binding of every point of the sample district is pinned: refactoring ``bind`` must not change a signal.

The expected bindings live in ``yuzhong_bindings.json`` (seed 0, one point a line). Regenerate it only for an
intended change of the simulation, and say why in the commit:
``.venv/bin/python -m tests.simulators_physics.test_binding``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from buildings.brick import BRICK_CLASSES, EQUIPMENT_BRICK, UNITS
from buildings.site import Site, load_site
from simulators import binding
from simulators.points import REF_DAY, SitePhysics

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("yuzhong_bindings.json")


def bindings(physics: SitePhysics) -> dict[str, dict[str, Any]]:
    """Every field of every point's binding, by point key."""
    return {k: dataclasses.asdict(b) for k, b in sorted(physics.bindings.items())}


def test_every_point_of_the_sample_district_keeps_its_binding(physics: SitePhysics) -> None:
    expected = json.loads(GOLDEN.read_text())
    got = bindings(physics)
    assert sorted(got) == sorted(expected), "points added or lost"
    changed = {k: (expected[k], got[k]) for k in expected if got[k] != expected[k]}
    assert not changed, f"{len(changed)} bindings changed, e.g. {next(iter(changed.items()))}"



def test_the_table_names_only_known_brick_classes_kinds_and_units() -> None:
    assert set(binding.BY_BRICK) <= set(BRICK_CLASSES)
    assert {b for b, _ in binding.BY_KIND} <= set(BRICK_CLASSES)
    assert {k for _, k in binding.BY_KIND} <= set(EQUIPMENT_BRICK)
    assert set(binding.BY_UNIT) <= set(UNITS)
    assert {h.brick for h in binding.NAME_HINTS} <= set(BRICK_CLASSES)


def _bind(site: Site, physics: SitePhysics, key: str, **changes: Any) -> binding.Binding:
    ref = site.points[key]
    if changes:
        ref = dataclasses.replace(ref, point=ref.point.model_copy(update=changes))
    model = physics.models[ref.building.id]
    return binding.bind(ref, model, set(model.run(REF_DAY, 1)), 0)


def test_reading_a_name_is_an_explicit_logged_fallback(site: Site, physics: SitePhysics,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="simulators.binding"):
        b = _bind(site, physics, "jiefangbei-tower/dr-temp")  # "7F data room": no signal of its own
    assert (b.signal, b.offset) == ("zones.t", -1.0)
    assert [r.getMessage() for r in caplog.records if "dr-temp" in r.getMessage() and "data" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="simulators.binding"):
        b = _bind(site, physics, "jiefangbei-tower/dr-leak")  # a table hit reads no name
    assert b.signal == "leak:jiefangbei-tower/dr-leak" and not caplog.records


def test_a_point_without_physics_falls_back_to_mid_range(site: Site, physics: SitePhysics) -> None:
    b = _bind(site, physics, "jiefangbei-tower/dr-temp", brick="Foo_Sensor")  # an unknown class
    assert (b.kind, b.fallback, b.const) == ("const", True, 25.0)  # range [-10, 60]
    b = _bind(site, physics, "jiefangbei-tower/dr-temp", sim={"signal": "oat", "scale": 2.0})
    assert (b.kind, b.signal, b.scale, b.fallback) == ("analog", "oat", 2.0, False)


if __name__ == "__main__":
    rows = bindings(SitePhysics(load_site(str(ROOT / "buildings" / "sites" / "yuzhong")), seed=0))
    lines = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in rows.items()]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {GOLDEN}")
