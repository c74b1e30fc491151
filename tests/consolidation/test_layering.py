"""DESIGN.md's import table, enforced: parse every module's imports (top level and inside functions) and check
each package imports only the packages it may. Imports under ``if TYPE_CHECKING:`` are type hints, not
dependencies, and are allowed."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = ("buildings", "telemetry", "collectors", "rules", "simulators", "insight", "dashboard", "api", "retrofit")
MAY_IMPORT: dict[str, set[str]] = {
    "buildings": set(),
    "telemetry": {"buildings"},
    "collectors": {"buildings", "telemetry"},
    "rules": {"buildings", "telemetry"},
    "simulators": {"buildings"},
    "insight": {"buildings", "telemetry", "rules"},
    "dashboard": {"buildings", "telemetry", "rules", "insight"},
    "api": {"buildings", "telemetry", "rules", "insight"},
    "retrofit": set(OURS),
}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers inside `if TYPE_CHECKING:` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for child in node.body:
                    lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import of one of our packages, type-checking ones left out."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    hints = _type_checking_lines(tree)
    out = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in hints:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) \
                == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            out.append((node.lineno, node.args[0].value.split(".")[0]))
    return [(line, pkg) for line, pkg in out if pkg in OURS]


# Known, reported to the lead, not yet fixed: the Streamlit app reads its Settings from retrofit.settings (the
# entry script runs in its own process; fixing it means moving Settings or the entry script, and the pages find
# their files relative to that script). Each entry is (module path, imported package).
KNOWN = {("dashboard/ui.py", "retrofit")}


def violations() -> list[str]:
    found = []
    for pkg, allowed in MAY_IMPORT.items():
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for line, other in imports_of(path):
                if other != pkg and other not in allowed and (rel, other) not in KNOWN:
                    found.append(f"{rel}:{line}: {pkg} may not import {other}")
    return found


def test_every_package_imports_only_what_design_allows() -> None:
    assert violations() == []


def test_known_exceptions_are_still_real() -> None:
    """An exception that no longer happens must leave the list (so the list cannot hide a new one)."""
    for rel, other in KNOWN:
        assert other in {pkg for _, pkg in imports_of(ROOT / rel)}, (rel, other)


def test_the_checker_sees_function_level_imports_and_skips_type_hints(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from telemetry.store import Store\n"
                   "def f():\n    from dashboard.scope import Scope\n    import rules.alarms\n", "utf-8")
    assert sorted(imports_of(src)) == [(5, "dashboard"), (6, "rules")]
