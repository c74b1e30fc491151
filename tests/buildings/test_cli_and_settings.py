"""The `retrofit` command for issue 2 (help, site check/show, config show) and the settings rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from retrofit.cli import app
from retrofit.settings import SettingsError, load_settings, mask_url
from tests.buildings.conftest import BASE, edit

ROOT = Path(__file__).resolve().parents[2]
RETROFIT = str(Path(sys.executable).parent / "retrofit")
SUBCOMMANDS = ["demo", "simulate", "collect", "discover", "rules", "backfill", "dashboard", "api", "users", "program",
               "subsidy", "savings", "catalogue", "evidence", "site", "config"]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it (wide terminal so rich does not wrap paths)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RETROFIT_")}
    full_env.update({"COLUMNS": "250", "NO_COLOR": "1", **(env or {})})
    return subprocess.run([RETROFIT, *args], capture_output=True, text=True, timeout=60, env=full_env, cwd=cwd)


def test_help_lists_every_subcommand() -> None:
    out = run("--help")
    assert out.returncode == 0, out.stderr
    for name in SUBCOMMANDS:
        assert f" {name} " in out.stdout, f"{name} missing from retrofit --help"


def _leaves(group, prefix: tuple[str, ...] = ()):
    """Every leaf command of the click tree with its path."""
    for name, cmd in getattr(group, "commands", {}).items():
        if getattr(cmd, "commands", None):
            yield from _leaves(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_every_available_command_has_an_example() -> None:
    """Each real command's --help carries a one-line purpose and an Example; placeholders say so plainly."""
    root = typer.main.get_command(app)
    leaves = list(_leaves(root))
    assert (("site", "check") in dict(leaves)) and (("config", "show") in dict(leaves))
    runner = CliRunner()
    for path, cmd in leaves:
        text = cmd.help or ""
        if text.startswith("Not available yet"):
            res = runner.invoke(app, [*path])
            assert res.exit_code == 3 and "not available yet" in res.output, path
            continue
        assert text.strip().splitlines()[0].strip(), f"{path}: no one-line purpose"
        assert "Example" in text, f"`retrofit {' '.join(path)} --help` has no Example"


def test_site_check_json_on_the_sample_district() -> None:
    out = run("site", "check", "buildings/sites/yuzhong", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["buildings"] >= 4 and summary["points"] >= 300
    assert all(summary["points_by_protocol"][p] > 0 for p in ("modbus", "bacnet", "mqtt"))
    assert sum(b["points"] for b in summary["by_building"]) == summary["points"]
    assert {b["id"] for b in summary["by_building"]} >= {"jiefangbei-tower", "huaxin-building"}
    text = run("site", "check", "buildings/sites/yuzhong")
    assert text.returncode == 0 and f"{summary['points']} points" in text.stdout


def test_site_check_broken_file_names_file_line_field(tmp_path: Path) -> None:
    text, line = edit(BASE, "modbus: {device: meter, address: 0, type: float32}",
                      "modbus: {device: no-such-meter, address: 0, type: float32}")
    path = tmp_path / "broken-tower.yaml"
    path.write_text(text, encoding="utf-8")
    out = run("site", "check", str(path))
    assert out.returncode != 0
    assert f"{path}:{line}: equipment[0].points[0].modbus.device: device 'no-such-meter' does not exist" in out.stderr
    assert "nothing was loaded" in out.stderr
    # a float32 at an odd register on top of another point
    text, line = edit(BASE, "modbus: {device: meter, address: 2, type: uint32, scale: 0.01}",
                      "modbus: {device: meter, address: 1, type: float32}")
    path.write_text(text, encoding="utf-8")
    out = run("site", "check", str(tmp_path))
    assert out.returncode != 0
    assert f"broken-tower.yaml:{line}: equipment[0].points[1].modbus.address: holding registers 1-2" in out.stderr


def test_site_show_prints_the_tree() -> None:
    res = CliRunner().invoke(app, ["site", "show", str(ROOT / "buildings/sites/yuzhong")])
    assert res.exit_code == 0, res.output
    for words in ("jiefangbei-tower", "解放碑渝信大厦", "ahu1-sat  Supply_Air_Temperature_Sensor [degC 0..50]",
                  "<- ahu-1-ctl: analog-input,1", "holding 8198 float32", "coil 0 bit", "topics yuzhong/",
                  "subitem=total", "counter"):
        assert words in res.output, words


# --- settings ---------------------------------------------------------------------------------------


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No RETROFIT_* from the caller's environment; work in a temp dir without retrofit.toml."""
    for k in list(os.environ):
        if k.startswith("RETROFIT_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_environment_beats_toml(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = clean_env / "retrofit.toml"
    toml.write_text('[retrofit]\ninflux_database = "from_toml"\nlog_level = "DEBUG"\napi_port = 9000\n')
    s = load_settings()
    assert (s.influx_database, s.log_level, s.api_port) == ("from_toml", "DEBUG", 9000)
    monkeypatch.setenv("RETROFIT_INFLUX_DATABASE", "from_env")
    monkeypatch.setenv("RETROFIT_API_PORT", "9100")
    s = load_settings()
    assert (s.influx_database, s.log_level, s.api_port) == ("from_env", "DEBUG", 9100)
    # RETROFIT_CONFIG picks another file, and a missing one is an error, not silent defaults
    other = clean_env / "other.toml"
    other.write_text('influx_database = "other"\n')
    monkeypatch.delenv("RETROFIT_INFLUX_DATABASE")
    monkeypatch.setenv("RETROFIT_CONFIG", str(other))
    assert load_settings().influx_database == "other"
    monkeypatch.setenv("RETROFIT_CONFIG", str(clean_env / "missing.toml"))
    with pytest.raises(SettingsError, match="settings file not found"):
        load_settings()


@pytest.mark.parametrize("secret", ["influx_token", "mqtt_password", "influx_password", "secret_key"])
def test_secret_in_toml_is_refused(clean_env: Path, secret: str) -> None:
    (clean_env / "retrofit.toml").write_text(f'{secret} = "hunter2"\n')
    with pytest.raises(SettingsError) as info:
        load_settings()
    msg = str(info.value)
    assert f"RETROFIT_{secret.upper()}" in msg and "hunter2" not in msg


def test_toml_mistakes_are_named(clean_env: Path) -> None:
    (clean_env / "retrofit.toml").write_text('influx_databse = "x"\n')
    with pytest.raises(SettingsError, match="unknown setting.*influx_databse"):
        load_settings()
    (clean_env / "retrofit.toml").write_text('influx_database = "x\n')
    with pytest.raises(SettingsError, match="retrofit.toml"):
        load_settings()


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = {"RETROFIT_INFLUX_TOKEN": "tok-s3cr3t-value", "RETROFIT_MQTT_PASSWORD": "mqtt-s3cr3t",
           "RETROFIT_INFLUX_URL": "http://reader:url-s3cr3t@127.0.0.1:8086",
           "RETROFIT_RECORDS_URL": "postgresql://app:db-s3cr3t@db.example/retrofit",
           "RETROFIT_MQTT_URL": "mqtt://127.0.0.1:1883", "RETROFIT_LOG_LEVEL": "WARNING"}
    out = run("config", "show", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "s3cr3t" not in out.stdout + out.stderr
    shown = json.loads(out.stdout)
    assert shown["influx_token"] == "***" and shown["mqtt_password"] == "***"
    assert shown["influx_url"] == "http://reader:***@127.0.0.1:8086"
    assert shown["records_url"] == "postgresql://app:***@db.example/retrofit"
    assert shown["mqtt_url"] == "mqtt://127.0.0.1:1883" and shown["log_level"] == "WARNING"
    assert shown["secret_key"] is None  # unset secrets show as unset, not as ***
    (tmp_path / "retrofit.toml").write_text('mqtt_password = "in-file-s3cr3t"\n')
    bad = run("config", "show", cwd=tmp_path)
    assert bad.returncode != 0 and "RETROFIT_MQTT_PASSWORD" in bad.stderr and "s3cr3t" not in bad.stderr


def test_mask_url_edge_cases() -> None:
    assert mask_url("http://u:p@h:1/x?y=1") == "http://u:***@h:1/x?y=1"
    assert mask_url("http://h:8086") == "http://h:8086"
    assert mask_url("mqtt://:only-pass@h") == "mqtt://:***@h"
    assert "p%40ss" not in mask_url("http://u:p%40ss@h")


def test_bad_values_name_the_setting_and_its_source(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETROFIT_API_PORT", "eighty-s3cr3t")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "api_port (from environment variable RETROFIT_API_PORT)" in str(info.value)
    assert "s3cr3t" not in str(info.value)
    monkeypatch.delenv("RETROFIT_API_PORT")
    (clean_env / "retrofit.toml").write_text('buffer_max_mb = 0\n')
    with pytest.raises(SettingsError, match=r"buffer_max_mb \(from retrofit.toml\)"):
        load_settings()
    out = run("config", "show", env={"RETROFIT_DASHBOARD_PORT": "x"}, cwd=clean_env)
    assert out.returncode == 1 and "RETROFIT_DASHBOARD_PORT" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("argv", [["store", "check"], ["users", "token", "list"], ["rules", "alarms"],
                                  ["dashboard"], ["program", "status"], ["backfill", "--from", "2026-03-01",
                                                                          "--to", "2026-03-02"]])
def test_every_command_reports_a_bad_setting_the_same_way(clean_env: Path, argv: list[str]) -> None:
    """One settings_or_exit: each command names the setting and its source, exits 1, and shows no traceback."""
    out = run(*argv, env={"RETROFIT_DASHBOARD_PORT": "x"}, cwd=clean_env)
    assert out.returncode == 1, (argv, out.stdout, out.stderr)
    assert "invalid settings: dashboard_port (from environment variable RETROFIT_DASHBOARD_PORT)" in out.stderr
    assert "Traceback" not in out.stderr
