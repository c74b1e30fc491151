"""The deploy/ files are syntactically valid: systemd unit, Containerfile, settings example, logrotate."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser

from retrofit.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (DEPLOY / "retrofit-collect@.service").read_text()
    retrofit_bin = Path(sys.executable).parent / "retrofit"
    unit = unit.replace("/opt/retrofit/.venv/bin/retrofit", str(retrofit_bin))
    target = tmp_path / "retrofit-collect@demo.service"
    target.write_text(unit)
    assert shutil.which("systemd-analyze"), "systemd-analyze is part of Debian's systemd"
    out = subprocess.run(["systemd-analyze", "verify", str(target)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (out.stdout + out.stderr).splitlines()
                if "retrofit-collect@demo" in ln and "Unit is not loaded" not in ln]
    assert not problems, problems


def test_containerfile_parses() -> None:
    df = DockerfileParser(fileobj=open(DEPLOY / "Containerfile", "rb"))  # noqa: SIM115
    instructions = [i["instruction"] for i in df.structure if i["instruction"] != "COMMENT"]
    assert instructions[0] == "FROM" and "ENTRYPOINT" in instructions and "HEALTHCHECK" in instructions
    assert df.baseimage.startswith("python:3.11")
    # every COPY source exists in the repository
    for i in df.structure:
        if i["instruction"] == "COPY":
            for src in i["value"].split()[:-1]:
                assert (DEPLOY.parent / src).exists(), src


def test_settings_example_loads(monkeypatch) -> None:
    monkeypatch.setenv("RETROFIT_CONFIG", str(DEPLOY / "retrofit.toml.example"))
    s = load_settings()
    assert s.influx_url == "http://127.0.0.1:8086" and s.mqtt_url == "mqtt://127.0.0.1:1883"


def test_logrotate_config_parses() -> None:
    text = (DEPLOY / "logrotate.conf").read_text()
    body = text[text.index("{") + 1: text.rindex("}")]
    directives = {ln.split()[0] for ln in body.splitlines() if ln.strip()}
    assert {"daily", "rotate", "compress", "missingok"} <= directives
