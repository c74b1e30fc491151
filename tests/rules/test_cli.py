"""`retrofit rules ...` in-process: list, check (bindings and file/line errors), replay over the embedded store,
run on MQTT readings from a real broker, alarms and ack."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from collectors.mqtt_publish import encode_reading, reading_topic
from retrofit.cli import app
from retrofit.cmd_collect import session_client_id
from rules.alarms import AlarmBook
from rules.model import RuleError, load_rules
from telemetry.embedded import EmbeddedStore
from telemetry.reading import Reading
from tests.rules.conftest import MONDAY

H = 3600.0
runner = CliRunner()

GOOD_RULE = """rules:
  - id: t-hot
    name: {zh: 热, en: Hot}
    family: safety
    scope: point
    points:
      x: {class: Air_Temperature_Sensor}
    when: x > 40
    severity: critical
    message: {zh: "{point} {x:.0f}", en: "{point} {x:.0f}"}
    source: test
"""


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RETROFIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RETROFIT_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    for var in ("RETROFIT_INFLUX_URL", "RETROFIT_MQTT_URL", "RETROFIT_RECORDS_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "data"


def test_list_shows_the_library() -> None:
    res = runner.invoke(app, ["rules", "list", "--json"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("{")]
    assert len(lines) >= 30 and '"family": "safety"' in res.output and "G36" in res.output


def test_library_covers_the_issue() -> None:
    lib = load_rules()
    ids = {r.id for r in lib}
    fams = {r.rule.family.value for r in lib}
    assert len(lib) >= 30 and fams == {"sensor_health", "energy", "safety"}
    assert len([i for i in ids if i.startswith("g36-fc")]) >= 6
    assert {"sv-stale", "sv-comm", "sv-range", "sv-spike", "sv-flatline-temp", "e-after-hours", "e-base-load",
            "e-peak-demand", "e-simultaneous-heat-cool", "e-lighting-unoccupied", "e-fan-unoccupied",
            "e-chiller-cop-low", "e-daily-energy-baseline", "s-switch-room-hot", "s-co-gbt18883",
            "s-co-garage-ventilate", "s-co2-high", "s-gas-lel-10", "s-gas-lel-25", "s-water-leak", "s-smoke",
            "s-voltage-unbalance-2", "s-voltage-unbalance-3", "s-overcurrent-80"} <= ids
    assert all(len(r.rule.source) > 5 for r in lib)


def test_check_binds_the_sample_district(sample_site_path: Path) -> None:
    res = runner.invoke(app, ["rules", "check", "--site", str(sample_site_path), "--json"])
    assert res.exit_code == 0, res.output
    assert '"g36-fc1": [' in res.output and "jiefangbei-tower/ahu-1" in res.output
    res = runner.invoke(app, ["rules", "check", "--site", str(sample_site_path), "--strict"])
    assert res.exit_code == 1  # two CO rules for occupied zones bind nothing here: an error with --strict
    assert "bind nothing" in res.output


def test_check_shows_thresholds_persistence_and_sources(sample_site_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    res = runner.invoke(app, ["rules", "check", "--site", str(sample_site_path), "--json"])
    th = json.loads(res.output)["thresholds"]
    assert th["sv-rate-room-rh"]["params"] == {"max_pct_per_15min": 15.0}
    assert th["sv-spike"]["for_s"] == 0 and "out-and-back" in th["sv-spike"]["source"]
    assert th["e-fan-unoccupied"]["for_s"] == 1800 and "SCHED-1" in th["e-fan-unoccupied"]["source"]
    from retrofit.cli import console

    monkeypatch.setattr(console, "width", 250)  # made at import: COLUMNS in the env comes too late for it
    res = runner.invoke(app, ["rules", "check", "--site", str(sample_site_path)])
    assert "max_pct_per_15min=15" in res.output and "clear 1800 s" in res.output


@pytest.mark.parametrize("bad, line, reason", [
    ("    when: x > 40 and foo(x)\n", 8, "unknown function 'foo'"),
    ("    when: x.real > 40\n", 8, "attribute access"),
    ("    when: |\n      x > 40 and\n      x[0] > 1\n", 10, "subscripts"),
    ("    when: x > 40 and y > 1\n", 8, "unknown name 'y'"),
    ("    when: x > 40 >\n", 8, "syntax error"),
])
def test_check_names_file_line_and_reason(tmp_path: Path, site_path: Path, bad: str, line: int, reason: str) -> None:
    f = tmp_path / "rules" / "bad.yaml"
    f.parent.mkdir()
    f.write_text(GOOD_RULE.replace("    when: x > 40\n", bad), encoding="utf-8")
    with pytest.raises(RuleError) as exc:
        load_rules(str(f.parent))
    p = exc.value.problems[0]
    assert p.file == str(f) and p.line == line and reason in p.message, str(exc.value)
    res = runner.invoke(app, ["rules", "check", "--site", str(site_path), "--rules", str(f.parent)])
    assert res.exit_code == 2 and f"{f}:{line}" in res.output and reason in res.output


def test_check_rejects_unknown_point_classes(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(GOOD_RULE.replace("Air_Temperature_Sensor", "Air_Temprature_Sensor"), encoding="utf-8")
    with pytest.raises(RuleError) as exc:
        load_rules(str(f))
    p = exc.value.problems[0]
    assert p.line == 7 and "unknown Brick point class 'Air_Temprature_Sensor'" in p.message
    assert "did you mean 'Air_Temperature_Sensor'" in p.message


def test_replay_over_the_embedded_store(env: Path, site_path: Path) -> None:
    store = EmbeddedStore(env / "telemetry.db")
    rs = []
    for k in range(int(8 * 60)):  # 08:00-16:00 Monday, a leak from 10:00 to 10:30, CO2 fine
        t = MONDAY + 8 * H + k * 60
        rs.append(Reading("b1/leak-1", t, 1.0 if MONDAY + 10 * H <= t < MONDAY + 10.5 * H else 0.0))
        rs.append(Reading("b1/co2-1", t, 600.0 + k % 5))
    store.write(rs)
    store.close()
    res = runner.invoke(app, ["rules", "replay", "--site", str(site_path), "--from", "2026-03-02", "--to",
                              "2026-03-02", "--save"])
    assert res.exit_code == 0, res.output
    assert "s-water-leak" in res.output and "raise" in res.output and "clear" in res.output
    assert "960 readings" in res.output
    book = AlarmBook(f"sqlite:///{env / 'records.db'}")
    [a] = book.list(family="safety")
    assert {x.rule for x in book.list()} == {"s-water-leak", "sv-stale"}  # devices without data are stale
    book.close()
    assert (a.rule, a.subject, a.state, a.raised_at, a.cleared_at) == ("s-water-leak", "leak-1", "cleared",
                                                                       MONDAY + 10 * H, MONDAY + 10.5 * H + 600)
    res = runner.invoke(app, ["rules", "ack", str(a.id), "--user", "zhang.wei", "--comment", "pipe fixed"])
    assert res.exit_code == 0 and "acknowledged by zhang.wei" in res.output
    res = runner.invoke(app, ["rules", "alarms", "--state", "cleared", "--family", "safety"])
    assert res.exit_code == 0 and "1 alarms" in res.output and "漏水报警" in res.output
    res = runner.invoke(app, ["rules", "maintain", "--building", "b1", "--from", "2026-03-02T09:00", "--to",
                              "2026-03-02T12:00", "--reason", "riser work", "--user", "li.na"])
    assert res.exit_code == 0 and "maintenance window 1" in res.output
    book = AlarmBook(f"sqlite:///{env / 'records.db'}")
    [w] = book.windows("b1")
    book.close()
    assert (w.start, w.end, w.reason) == (MONDAY + 9 * H, MONDAY + 12 * H, "riser work")
    res = runner.invoke(app, ["rules", "replay", "--site", str(site_path), "--from", "2026-04-02", "--to",
                              "2026-04-01"])
    assert res.exit_code == 1 and "--to must not be before --from" in res.output


def _open_session(port: int, client_id: str, topic: str) -> None:
    """Create the worker's persistent MQTT session before it starts, so the broker queues what is published while
    the worker is still loading (deterministic, where a sleep raced the worker's start on a loaded machine)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                    protocol=mqtt.MQTTv311)
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert done.wait(10), "no SUBACK from the broker"
    c.disconnect()
    c.loop_stop()


def test_run_evaluates_readings_from_mqtt_for_its_buildings(env: Path, site_path: Path, mosquitto) -> None:
    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    result: dict = {}

    def work() -> None:
        result["res"] = runner.invoke(app, ["rules", "run", "--from", url, "--buildings", "b1", "--site",
                                            str(site_path), "--duration", "6", "--lateness", "0"])
    _open_session(mosquitto.port, session_client_id("retrofit-rules", ["b1"]), "retrofit/readings/b1/#")
    th = threading.Thread(target=work)
    th.start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    infos = []
    for k in range(20):  # a leak for 20 minutes of event time, then a malformed payload and another building
        t = MONDAY + 10 * H + k * 60
        infos.append(pub.publish(reading_topic("retrofit", "b1/leak-1"),
                                 encode_reading(Reading("b1/leak-1", t, 1.0)), qos=1))
    infos.append(pub.publish("retrofit/readings/b1/leak-1", b"{not json", qos=1))
    infos.append(pub.publish(reading_topic("retrofit", "b2/leak-1"),
                             encode_reading(Reading("b2/leak-1", MONDAY, 1.0)), qos=1))
    for i in infos:
        i.wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    th.join(30)
    res = result["res"]
    assert res.exit_code == 0, res.output
    assert "s-water-leak" in res.output and "1 malformed payloads" in res.output
    book = AlarmBook(f"sqlite:///{env / 'records.db'}")
    rows = book.list(family="safety")
    book.close()
    assert [(a.rule, a.building, a.subject, a.raised_at) for a in rows] == [
        ("s-water-leak", "b1", "leak-1", MONDAY + 10 * H)]


def test_run_gets_readings_published_while_it_was_stopped(env: Path, site_path: Path, mosquitto) -> None:
    """The worker's MQTT session is persistent and named after its buildings: readings published while it is
    down (a restart) are queued by the broker and evaluated when it is back, so the leak still raises."""
    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    args = ["rules", "run", "--from", url, "--buildings", "b1", "--site", str(site_path), "--lateness", "0"]
    first = runner.invoke(app, [*args, "--duration", "2"])  # creates the session and subscribes, then stops
    assert first.exit_code == 0 and "reading retrofit/readings/b1/#" in first.output, first.output
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    infos = [pub.publish(reading_topic("retrofit", "b1/leak-1"),
                         encode_reading(Reading("b1/leak-1", MONDAY + 11 * H + k * 60, 1.0)), qos=1)
             for k in range(10)]
    for i in infos:
        i.wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    second = runner.invoke(app, [*args, "--duration", "4", "--json"])
    assert second.exit_code == 0, second.output
    summary = json.loads(second.output.strip().splitlines()[-1])
    assert summary["received"] == 10, summary
    book = AlarmBook(f"sqlite:///{env / 'records.db'}")
    rows = book.list(family="safety")
    book.close()
    assert [(a.rule, a.subject, a.raised_at) for a in rows] == [("s-water-leak", "leak-1", MONDAY + 11 * H)]


def test_replay_of_backfilled_15_minute_history_finds_the_scenario_fault(env: Path, sample_site_path: Path) -> None:
    """End to end: the simulator backfills a scenario into the embedded store; replay finds exactly its fault."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from buildings.site import load_site
    from simulators.history import backfill, scenario_faults
    from tests.conftest import ROOT

    tz = ZoneInfo("Asia/Shanghai")
    site = load_site(str(sample_site_path))
    t0 = dt.datetime(2026, 3, 3, tzinfo=tz).timestamp()
    t1 = dt.datetime(2026, 3, 5, tzinfo=tz).timestamp()
    faults, seed = scenario_faults(str(ROOT / "simulators/scenarios/march-2026-all-faults.yaml"), site,
                                   dt.datetime(2026, 3, 1, tzinfo=tz).timestamp(), t1)
    store = EmbeddedStore(env / "telemetry.db")
    backfill(site, store, t0, t1, seed=seed or 0, faults=faults, buildings=["daping-makerworks"])
    store.close()
    res = runner.invoke(app, ["rules", "replay", "--site", str(sample_site_path), "--from", "2026-03-03", "--to",
                              "2026-03-04", "--buildings", "daping-makerworks"])
    assert res.exit_code == 0, res.output
    assert "sampled every 900 s" in res.output
    raised = {ln.split()[4] for ln in res.output.splitlines() if " raise " in ln}
    assert raised == {"sv-stale", "sv-comm"}, res.output  # rtu-2-ctl offline 13:00-16:00 on 03-04, nothing else


def test_alarms_lists_groups_and_what_flood_control_suppressed(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RETROFIT_ALARM_RULE_LIMIT=2 reaches the book the commands make; suppressed alarms stay listable."""
    import time

    from retrofit.cli import console
    from retrofit.cmd_rules import alarm_book
    from retrofit.settings import load_settings
    from tests.seed import alarm_event

    monkeypatch.setenv("RETROFIT_ALARM_RULE_LIMIT", "2")
    monkeypatch.setattr(console, "width", 240)  # one table row per alarm
    book = alarm_book(load_settings())
    now = time.time()
    book.apply([alarm_event("raise", "sv-stale", "b1", p, now - 300, "sensor_health", "warning")
                for p in ("sat", "mat", "rat", "oat")])  # one instant, four points: one grouped alarm
    book.apply([alarm_event("raise", "sv-flatline", "b1", f"co2-{i}", now - 200 + i, "sensor_health", "warning")
                for i in range(4)])
    book.close()
    res = runner.invoke(app, ["rules", "alarms"])
    out = " ".join(res.output.split())
    assert res.exit_code == 0 and "3 alarms" in out, res.output
    assert "b1: 4 points (mat, oat, rat, ...)" in out and "b1/co2-0" in out
    assert "flood control suppressed 2 in the last day (sv-flatline x2)" in out
    res = runner.invoke(app, ["rules", "alarms", "--suppressed"])
    assert res.exit_code == 0 and "5 alarms" in res.output and res.output.count("(flood-suppressed)") == 2, res.output
