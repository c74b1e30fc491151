"""The commands do not reach into each other's private names (`from retrofit.cmd_x import _y`): a helper two
commands share gets a public name. (Other packages still borrow buildings.site's private YAML helpers; see the
consolidation report.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("buildings", "telemetry", "collectors", "rules", "simulators", "dashboard", "api", "retrofit")


def private_imports(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    found = []
    for pkg in packages:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                        and node.module.split(".")[0] in PACKAGES:
                    found += [f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {a.name}"
                              for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_command_imports_another_commands_private_name() -> None:
    assert private_imports(("retrofit",)) == []


def test_collect_loads_the_rule_library_through_the_public_loader() -> None:
    from retrofit.cmd_rules import load_rules_or_exit

    assert len(load_rules_or_exit(None)) > 10
