"""`retrofit demo` end to end: records, history, simulators over the real protocols, collectors, rules, dashboard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from retrofit.devservers import free_port


def test_demo_runs_headless_and_reports(tmp_path: Path) -> None:
    retrofit = Path(sys.executable).parent / "retrofit"
    argv = [str(retrofit), "demo", "--dir", str(tmp_path / "demo"), "--history-days", "1", "--no-baseline",
            "--run-for", "110", "--fault-spacing", "10", "--json", "--port", str(free_port())]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    by_proto = summary["readings_by_protocol"]
    assert by_proto["modbus"] > 0 and by_proto["bacnet"] > 0 and by_proto["mqtt"] > 0, summary
    assert summary["dashboard_health"] is True
    assert summary["history_readings"] > 40_000
    health = summary["devices_by_health"]
    assert health.get("ok", 0) >= 40, health
    assert health.get("offline", 0) >= 1, "the injected device_offline fault must show"  # ahu-2-ctl
    assert summary["alarms_by_family"].get("safety", 0) >= 1, summary
    # the sign-ins are printed once, on stderr with --json, never into the JSON summary
    assert "district" in out.stderr and "password" not in out.stdout
