"""The portfolio's district map: base map file checks, the outline and building traces the page draws (AppTest,
both colour modes, both languages, scoped to the owner), and in a real Chromium with every non-loopback request
blocked: it renders offline, a click on a building opens its page; screenshots go to screenshots/ (CI artefact).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from dashboard import map as dmap
from dashboard.i18n import Tr
from tests.dashboard.conftest import FOREIGN, PASSWORD, sign_in
from tests.dashboard.test_browser import CHROMIUM_ARGS, _settle
from tests.dashboard.test_browser import dashboard_url as dashboard_url  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "screenshots"  # git-ignored; left after the run for people and CI to look at
OUTLINE = [[106.50, 29.53], [106.60, 29.53], [106.60, 29.58], [106.50, 29.58], [106.50, 29.53]]
WATER = [[106.49, 29.58], [106.61, 29.58], [106.61, 29.59], [106.49, 29.59], [106.49, 29.58]]


def fixture_doc(**meta: str) -> dict:
    """A base-map document in the shipped file's format. Its shapes are a test fixture, not a map."""
    return {"type": "FeatureCollection",
            "retrofit": {"source": "test fixture", "licence": "CC0-1.0", "attribution": "retrofit tests", **meta},
            "features": [
                {"type": "Feature", "properties": {"kind": "district", "name_zh": "测试区", "name_en": "Test district"},
                 "geometry": {"type": "Polygon", "coordinates": [OUTLINE]}},
                {"type": "Feature", "properties": {"kind": "water", "name_zh": "测试江", "name_en": "Test river"},
                 "geometry": {"type": "MultiPolygon", "coordinates": [[WATER]]}}]}


@pytest.fixture()
def map_file(dash_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "district.geojson"
    path.write_text(json.dumps(fixture_doc(), ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv("RETROFIT_MAP_FILE", str(path))
    return path


def chart(at) -> dict:
    charts = at.get("plotly_chart")
    assert charts, "no chart on the page"
    return json.loads(charts[0].proto.spec)


def layer(fig: dict, name: str) -> list[dict]:
    return [tr for tr in fig["data"] if (tr.get("meta") or {}).get("layer") == name]


def marker_ids(fig: dict) -> list[str]:
    return [c[0] for tr in layer(fig, "buildings") for c in tr["customdata"]]


def open_states(dash_env) -> dict[str, str]:
    """Each building's worst open severity, read from the AlarmBook itself (not through the page)."""
    from rules.alarms import AlarmBook

    book = AlarmBook(dash_env.records_url)
    counts: dict[str, dict[str, int]] = {}
    for a in book.list(state=["raised", "acknowledged"], limit=10_000):
        c = counts.setdefault(a.building, {})
        c[a.severity] = c.get(a.severity, 0) + 1
    book.close()
    return {b: dmap.alarm_state(c) for b, c in counts.items()}


# --- the base map file ---------------------------------------------------------------------------------------

def test_parse_basemap_reads_outline_water_and_provenance() -> None:
    bm = dmap.parse_basemap(fixture_doc(), "x.geojson")
    assert [a.kind for a in bm.areas] == ["district", "water"]
    assert bm.of("district")[0].rings[0][0] == (106.50, 29.53)
    assert bm.bounds() == (106.50, 29.53, 106.60, 29.58)
    assert (bm.licence, bm.attribution) == ("CC0-1.0", "retrofit tests")


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["retrofit"].pop("licence"), "x.geojson: the 'retrofit' member must give source, licence"),
    (lambda d: d["features"][1]["properties"].update(kind="road"), "x.geojson: feature 1: properties.kind"),
    (lambda d: d["features"][0]["geometry"].update(coordinates=[[[1, 2], [3, 4]]]), "feature 0: a ring needs 4+"),
    (lambda d: d["features"][0]["geometry"].update(type="LineString"), "feature 0: geometry must be a Polygon"),
    (lambda d: d["features"][0]["geometry"].update(coordinates=[[["a", 2]] * 4]), "feature 0: coordinates are"),
    (lambda d: d["features"].pop(0), "no feature of kind 'district'"),
    (lambda d: d.update(type="Feature"), "not a GeoJSON FeatureCollection"),
])
def test_bad_basemap_names_file_and_feature(change, expected: str) -> None:
    doc = fixture_doc()
    change(doc)
    with pytest.raises(dmap.MapDataError, match=expected.replace("(", r"\(").replace("'", "'")):
        dmap.parse_basemap(doc, "x.geojson")


def test_load_basemap_missing_default_is_none_and_broken_json_names_the_line(tmp_path: Path) -> None:
    assert dmap.load_basemap(None) is None or dmap.DEFAULT_FILE.is_file()
    with pytest.raises(dmap.MapDataError, match="no such file"):
        dmap.load_basemap(tmp_path / "absent.geojson")
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection",\n "features": [,]}', encoding="utf-8")
    with pytest.raises(dmap.MapDataError, match=r"bad.geojson: line 2: not JSON"):
        dmap.load_basemap(bad)


def test_clicked_building_only_returns_an_allowed_marker() -> None:
    event = {"selection": {"points": [{"curve_number": 0}, {"customdata": ["huaxin-building", "x"]},
                                      {"customdata": ["jiefangbei-tower", "y"]}]}}
    assert dmap.clicked_building(event, ["jiefangbei-tower"]) == "jiefangbei-tower"
    assert dmap.clicked_building(event, ["daping-makerworks"]) is None
    assert dmap.clicked_building({"selection": {"points": []}}, ["jiefangbei-tower"]) is None
    assert dmap.clicked_building(None, ["jiefangbei-tower"]) is None


def test_alarm_state_is_the_worst_open_severity() -> None:
    assert dmap.alarm_state({"critical": 1, "warning": 3}) == "critical"
    assert dmap.alarm_state({"fault": 2, "warning": 1}) == "fault"
    assert dmap.alarm_state({"advisory": 1}) == "warning"
    assert dmap.alarm_state({"critical": 0}) == "none"


# --- the portfolio page (AppTest) ----------------------------------------------------------------------------

def test_map_draws_outline_water_and_buildings_coloured_by_eui(dash_env, map_file: Path) -> None:
    at = sign_in("dora")
    assert not at.exception, at.exception
    fig = chart(at)
    (outline,) = layer(fig, "district")
    assert outline["fill"] == "toself" and outline["x"][:5] == [p[0] for p in OUTLINE]
    assert outline["y"][:5] == [p[1] for p in OUTLINE] and outline["hoverinfo"] == "skip"
    (water,) = layer(fig, "water")
    assert water["x"][:5] == [p[0] for p in WATER]
    assert fig["data"].index(outline) < fig["data"].index(water) < fig["data"].index(layer(fig, "buildings")[0])
    table = at.dataframe[0].value.set_index("楼宇编号")
    assert sorted(marker_ids(fig)) == sorted(table.index)
    (scale,) = [tr for tr in layer(fig, "buildings") if "colorscale" in tr["marker"]]
    for custom, colour in zip(scale["customdata"], scale["marker"]["color"], strict=True):
        assert colour == pytest.approx(float(table.loc[custom[0], "能耗强度 (kWh/m²·a)"]))  # EUI drives the colour
    assert scale["marker"]["cmin"] == pytest.approx(min(scale["marker"]["color"]))
    hover = scale["hovertemplate"]
    assert "能耗强度" in hover and "未恢复告警" in hover and "改造阶段" in hover
    assert "解放碑渝信大厦" in [c[1] for c in scale["customdata"]]
    assert fig["layout"]["annotations"][0]["text"] == "retrofit tests"
    captions = " ".join(c.value for c in at.caption)
    assert "retrofit tests" in captions and "CC0-1.0" in captions and "点击楼宇" in captions


def test_map_alarm_mode_colours_each_building_by_its_worst_open_alarm(dash_env, map_file: Path) -> None:
    expected = open_states(dash_env)
    assert set(expected.values()) >= {"fault", "warning"}  # the seeded alarms: something to tell apart
    at = sign_in("dora")
    at.radio(key="map_mode_zh").set_value("alarms").run()
    assert not at.exception, at.exception
    fig = chart(at)
    seen = {}
    for tr in layer(fig, "buildings"):
        state = tr["meta"]["state"]
        assert tr["marker"]["color"] == dmap.ALARM_COLOURS[state]
        assert tr["name"] == Tr("zh")(f"map.state.{state}")
        seen.update({c[0]: state for c in tr["customdata"]})
    assert len(seen) == 4
    for bid, state in seen.items():
        assert state == expected.get(bid, "none"), bid
    assert layer(fig, "district"), "the outline stays under the alarm view"


def test_map_in_english(dash_env, map_file: Path) -> None:
    at = sign_in("dora")
    at.session_state["lang"] = "en"  # as test_pages does: AppTest drops the entry script's sidebar radio
    at.run()
    at.radio(key="map_mode_en").set_value("alarms").run()
    assert not at.exception, at.exception
    fig = chart(at)
    names = {c[1] for tr in layer(fig, "buildings") for c in tr["customdata"]}
    assert "Jiefangbei Yuxin Tower" in names
    assert all("EUI" in tr["hovertemplate"] and "Open alarms" in tr["hovertemplate"] for tr in layer(fig, "buildings"))
    assert {tr["name"] for tr in layer(fig, "buildings")} <= {Tr("en")(f"map.state.{s}") for s in dmap.ALARM_STATES}
    assert at.radio(key="map_mode_en").label == "Colour by"


def test_owner_sees_only_own_buildings_on_the_map(dash_env, map_file: Path) -> None:
    at = sign_in("alice")
    assert not at.exception, at.exception
    for mode in ("eui", "alarms"):
        if mode == "alarms":
            at.radio(key="map_mode_zh").set_value("alarms").run()
        fig = chart(at)
        assert marker_ids(fig) == ["jiefangbei-tower"], mode
        spec = at.get("plotly_chart")[0].proto.spec
        leaked = [x for x in FOREIGN if x in spec]
        assert not leaked, (mode, leaked)


def test_map_without_base_map_says_so(dash_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(dmap, "DEFAULT_FILE", tmp_path / "none.geojson")
    monkeypatch.delenv("RETROFIT_MAP_FILE", raising=False)
    at = sign_in("dora")
    assert not at.exception, at.exception
    fig = chart(at)
    assert not layer(fig, "district") and len(marker_ids(fig)) == 4
    assert any("未安装区界底图" in c.value for c in at.caption)


def test_broken_base_map_is_a_warning_not_a_traceback(dash_env, map_file: Path) -> None:
    doc = fixture_doc()
    doc["retrofit"].pop("licence")
    map_file.write_text(json.dumps(doc), encoding="utf-8")
    at = sign_in("dora")
    assert not at.exception, at.exception
    assert any("底图文件无法使用" in w.value and "licence" in w.value for w in at.warning)
    assert len(marker_ids(chart(at))) == 4


# --- a real browser, offline ---------------------------------------------------------------------------------

def _block_outside(context, attempts: list[str]) -> None:
    """Every request that is not to the loopback dashboard is recorded and aborted."""
    def route(r) -> None:
        host = urlparse(r.request.url).hostname or ""
        if r.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost", "::1"):
            r.continue_()
        else:
            attempts.append(r.request.url)
            r.abort()

    context.route("**/*", route)


def _marker_center(page, bid: str) -> tuple[float, float]:
    """Where the building's marker is drawn: the map's own axes turn lon/lat into page pixels."""
    box = page.evaluate("""(bid) => {
        const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
        const tr = gd._fullData.find(t => (t.customdata || []).some(c => c[0] === bid));
        const i = tr.customdata.findIndex(c => c[0] === bid);
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
        return [r.left + xa._offset + xa.l2p(tr.x[i]), r.top + ya._offset + ya.l2p(tr.y[i])];
    }""", bid)
    return float(box[0]), float(box[1])


@contextlib.contextmanager
def offline_portfolio(url: str, height: int) -> Iterator:
    """Chromium signed in as dora on the portfolio, every non-loopback request aborted; after the block, fails
    if the page tried to reach anything outside the machine."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    attempts: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": height})
            _block_outside(context, attempts)
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            page.get_by_label("用户名").fill("dora")
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            page.wait_for_selector("[data-testid='stPlotlyChart'] .scatterlayer .trace")
            _settle(page)
            yield page
        finally:
            browser.close()
    assert not attempts, f"the page tried to reach outside the machine: {attempts[:5]}"


def test_map_renders_offline_and_a_click_opens_the_building(map_file: Path, dashboard_url: str) -> None:
    with offline_portfolio(dashboard_url, 2000) as page:
        paths = page.locator("[data-testid='stPlotlyChart'] .scatterlayer .trace path.js-fill")
        assert paths.count() >= 2, "outline and water are drawn"
        assert page.locator("[data-testid='stPlotlyChart'] .scatterlayer .point").count() >= 4
        page.screenshot(path=str(SHOTS / "portfolio-map-zh.png"))
        x, y = _marker_center(page, "huaxin-building")
        page.mouse.click(x, y)
        page.wait_for_url("**/building?building=huaxin-building*")
        page.wait_for_selector("text=设备树")
        _settle(page)
        assert "huaxin-building" in page.url
        page.screenshot(path=str(SHOTS / "portfolio-map-click-building.png"))
    assert (SHOTS / "portfolio-map-zh.png").stat().st_size > 30_000


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_portfolio_screenshots_for_the_docs(dashboard_url: str, lang: str) -> None:
    """The portfolio as shipped (the packaged base map, if any), offline, in both languages:
    docs/img/dashboard-portfolio-{zh,en}.png are copies of these (see docs/dashboard.md)."""
    with offline_portfolio(dashboard_url, 1700) as page:
        if lang == "en":
            page.get_by_text("English").click()
            page.wait_for_selector("text=Colour by")
            _settle(page)
        page.get_by_text("告警状态" if lang == "zh" else "Alarm state").click()
        _settle(page)
        page.wait_for_selector("[data-testid='stPlotlyChart'] .legendtext")
        legend = " ".join(page.locator("[data-testid='stPlotlyChart'] .legendtext").all_text_contents())
        assert ("有故障告警" if lang == "zh" else "Fault alarm open") in legend, legend
        page.screenshot(path=str(SHOTS / f"dashboard-portfolio-{lang}.png"))
    assert (SHOTS / f"dashboard-portfolio-{lang}.png").stat().st_size > 30_000


# --- scripts/build_district_map.py ---------------------------------------------------------------------------

def _build_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_district_map", ROOT / "scripts" / "build_district_map.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A boundary file in geoBoundaries' shape (two districts, one a 2,000-vertex ellipse) and a water file
    (a wide band crossing the frame, a far-away lake and a centre line). Synthetic shapes: test input only."""
    ring = [[106.55 + 0.04 * math.cos(2 * math.pi * i / 2000), 29.555 + 0.015 * math.sin(2 * math.pi * i / 2000)]
            for i in range(2000)]
    ring.append(ring[0])
    other = [[106.40, 29.50], [106.45, 29.50], [106.45, 29.52], [106.40, 29.50]]
    boundary = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"shapeName": "Jiulongpo", "shapeISO": ""},
         "geometry": {"type": "Polygon", "coordinates": [other]}},
        {"type": "Feature", "properties": {"shapeName": "Yuzhong District", "shapeISO": ""},
         "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    band = [[106.30, 29.572], [106.80, 29.572], [106.80, 29.60], [106.30, 29.60], [106.30, 29.572]]
    lake = [[107.0, 30.0], [107.1, 30.0], [107.1, 30.1], [107.0, 30.0]]
    water = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"natural": "water"}, "geometry": {"type": "Polygon", "coordinates": [band]}},
        {"type": "Feature", "properties": {"natural": "water"}, "geometry": {"type": "Polygon", "coordinates": [lake]}},
        {"type": "Feature", "properties": {"waterway": "river"},
         "geometry": {"type": "LineString", "coordinates": [[106.3, 29.58], [106.8, 29.58]]}}]}
    b, w = tmp_path / "adm3.geojson", tmp_path / "water.geojson"
    b.write_text(json.dumps(boundary), encoding="utf-8")
    w.write_text(json.dumps(water), encoding="utf-8")
    return b, w


def test_build_district_map_simplifies_clips_and_records_the_licence(tmp_path: Path, capsys) -> None:
    from shapely.geometry import shape

    mod = _build_script()
    boundary, water = _inputs(tmp_path)
    out = tmp_path / "district.geojson"
    rc = mod.main(["--boundary", str(boundary), "--name", "渝中区", "--name", "Yuzhong District", "--water",
                   str(water), "--source", "synthetic test input", "--licence", "ODbL-1.0",
                   "--attribution", "© OpenStreetMap contributors", "--out", str(out)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert 20 < summary["points"]["district"] < 600 and "water" in summary["points"]
    bm = dmap.load_basemap(out)
    assert (bm.licence, bm.attribution) == ("ODbL-1.0", "© OpenStreetMap contributors")
    district = shape(json.loads(out.read_text())["features"][0]["geometry"])
    source = shape(json.loads(boundary.read_text())["features"][1]["geometry"])
    assert district.hausdorff_distance(source) * mod.M_PER_DEG < 16  # within the 15 m tolerance (+rounding)
    (river,) = bm.of("water")
    xs = [p[0] for r in river.rings for p in r]
    assert min(xs) >= 106.50 and max(xs) <= 106.60 + 1e-6  # clipped to the district's frame; the lake is gone
    assert bm.of("district")[0].name_zh == "渝中区"


def test_build_district_map_errors_say_what_to_change(tmp_path: Path, capsys) -> None:
    mod = _build_script()
    boundary, _ = _inputs(tmp_path)
    rc = mod.main(["--boundary", str(boundary), "--name", "Nowhere", "--source", "s", "--licence", "l",
                   "--attribution", "a", "--out", str(tmp_path / "o.geojson")])
    err = capsys.readouterr().err
    assert rc == 1 and "no feature named 'Nowhere'" in err and "Jiulongpo" in err
    assert not (tmp_path / "o.geojson").exists()
    with pytest.raises(SystemExit):
        mod.main(["--boundary", str(boundary), "--name", "Yuzhong District", "--source", "s"])  # no licence
    assert "--licence" in capsys.readouterr().err
