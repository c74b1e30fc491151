"""`retrofit store check` and `retrofit store downsample` against the embedded store and a real influxd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrofit.cli import app
from retrofit.devservers import ServerProcess, free_port
from retrofit.settings import load_settings
from telemetry.buffer import DurableBuffer
from telemetry.embedded import EmbeddedStore
from telemetry.influx import InfluxStore
from telemetry.reading import Reading
from tests.telemetry.helpers import T0

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RETROFIT_CONFIG", "RETROFIT_INFLUX_URL", "RETROFIT_INFLUX_TOKEN", "RETROFIT_INFLUX_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETROFIT_DATA_DIR", str(tmp_path / "data"))


def check_json() -> tuple[int, dict]:
    res = runner.invoke(app, ["store", "check", "--json"])
    return res.exit_code, json.loads(res.stdout.splitlines()[0])


def test_embedded_with_buffer_depth_and_dead_letters(tmp_path: Path) -> None:
    code, report = check_json()
    assert code == 0 and report["store"] == "embedded" and report["reachable"]
    assert "created on the first write" in report["note"]
    settings = load_settings()
    store = EmbeddedStore(settings.embedded_store_path)
    store.write([Reading("b/p", T0, 1.0)])
    buf = DurableBuffer(settings.buffer_dir, store, start=False)
    buf.append([Reading("b/p", T0 + k, 1.0) for k in range(1, 41)])
    buf.close(drain_timeout=0)
    (settings.buffer_dir / "dead-letter" / "x.json").write_text('{"error": "HTTP 400", "rows": []}')
    code, report = check_json()
    assert code == 0 and report["version"].startswith("SQLite") and report["series"] == 1
    assert report["buffer"]["depth_readings"] == 40 and report["buffer"]["dead_letters"] == 1
    res = runner.invoke(app, ["store", "check"])
    assert res.exit_code == 0 and "40 readings in 1 batches" in res.stdout and "dead letters: 1" in res.stdout


def test_influx_reachable(influxd: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETROFIT_INFLUX_URL", f"http://127.0.0.1:{influxd.port}")
    monkeypatch.setenv("RETROFIT_INFLUX_DATABASE", "tel_cli_check")
    code, report = check_json()
    assert code == 0 and report["store"] == "influxdb" and report["version"].startswith("InfluxDB 1.6")
    assert report["database_exists"] is False
    InfluxStore(f"http://127.0.0.1:{influxd.port}", database="tel_cli_check").close()
    assert check_json()[1]["database_exists"] is True


def test_influx_unreachable_exits_1_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETROFIT_INFLUX_URL", f"http://127.0.0.1:{free_port()}")
    res = runner.invoke(app, ["store", "check"])
    assert res.exit_code == 1
    assert "not reachable" in res.stderr and "what to do: start InfluxDB" in res.stderr


def test_downsample_command(influxd: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETROFIT_INFLUX_URL", f"http://127.0.0.1:{influxd.port}")
    monkeypatch.setenv("RETROFIT_INFLUX_DATABASE", "tel_cli_down")
    with InfluxStore(f"http://127.0.0.1:{influxd.port}", database="tel_cli_down") as s:
        s.write([Reading("b/p", T0 + k * 600, float(k)) for k in range(12)])
    res = runner.invoke(app, ["store", "downsample", "--days", "20"])
    assert res.exit_code == 0, res.output
    assert "wrote 2 hourly rollup rows" in res.stdout


def test_influx_wrong_token_exits_1_without_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrofit.devservers import start_influxd

    server = start_influxd(tmp_path / "influxd", auth=("admin", "admin-pw-1"))
    try:
        monkeypatch.setenv("RETROFIT_INFLUX_URL", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("RETROFIT_INFLUX_TOKEN", "wrong-token-7f3a9c")
        res = runner.invoke(app, ["store", "check"])
        assert res.exit_code == 1
        assert "refused the credentials" in res.stderr and "RETROFIT_INFLUX_TOKEN" in res.stderr
        assert "wrong-token-7f3a9c" not in res.output + res.stderr
    finally:
        server.stop()
