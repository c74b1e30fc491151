"""deploy/retrofit-export.service and .timer (the scheduled city export) pass `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_export_timer_and_service_verify(tmp_path: Path) -> None:
    retrofit_bin = Path(sys.executable).parent / "retrofit"
    for name in ("retrofit-export.service", "retrofit-export.timer"):
        text = (DEPLOY / name).read_text().replace("/opt/retrofit/.venv/bin/retrofit", str(retrofit_bin))
        (tmp_path / name).write_text(text)
    assert "export energy --every 1h --iterations 1" in (DEPLOY / "retrofit-export.service").read_text()
    assert shutil.which("systemd-analyze"), "systemd-analyze is part of Debian's systemd"
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "retrofit-export.timer"),
                          str(tmp_path / "retrofit-export.service")], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (out.stdout + out.stderr).splitlines()
                if "retrofit-export" in ln and "Unit is not loaded" not in ln]
    assert not problems, problems
