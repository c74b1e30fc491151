"""The binding of every point of the sample district is pinned: refactoring ``bind`` must not change a signal.

The expected bindings live in ``yuzhong_bindings.json`` (seed 0, one point a line). Regenerate it only for an
intended change of the simulation, and say why in the commit:
``.venv/bin/python -m tests.simulators_physics.test_binding``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from buildings.site import load_site
from simulators.points import SitePhysics

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


if __name__ == "__main__":
    rows = bindings(SitePhysics(load_site(str(ROOT / "buildings" / "sites" / "yuzhong")), seed=0))
    lines = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in rows.items()]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {GOLDEN}")
