"""AppTest for every page: renders without exception, shows the expected metrics, language switch, session
timeout; scoping: an owner never sees another owner's building on any page, filter, URL parameter or download."""

from __future__ import annotations

import pytest

from buildings.records.base import make_engine
from buildings.site import load_site
from dashboard.auth import Role, set_disabled
from tests.dashboard.conftest import FOREIGN, PASSWORD, foreign_to, page_text, sign_in

PAGES = ["pages/portfolio.py", "pages/building.py", "pages/energy.py", "pages/alarms.py", "pages/retrofit.py",
         "pages/subsidies.py", "pages/program.py"]


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_wrong_password_is_refused(dash_env) -> None:
    at = sign_in("dora", "not-the-password")
    assert not at.exception
    assert any("用户名或密码错误" in e.value for e in at.error)
    assert not at.metric


def test_portfolio_metrics_district(dash_env) -> None:
    site = load_site(str(dash_env.site))
    at = sign_in("dora")
    assert not at.exception, at.exception
    m = metrics(at)
    assert m["楼宇数"] == "4"
    area = sum(b.gross_floor_area_m2 for b in site.buildings)
    assert m["总建筑面积 (m²)"] == f"{area:,.0f}"
    table = at.dataframe[0].value.set_index("楼宇编号")
    assert set(table.index) == {b.id for b in site.buildings}
    for bid in table.index:  # EUI from a week of simulated history, annualised
        assert 20 < float(table.loc[bid, "能耗强度 (kWh/m²·a)"]) < 400, bid
    assert table.loc["jiefangbei-tower", "改造阶段"] != "-"  # from the imported programme
    assert at.get("plotly_chart"), "the map is drawn"


def test_building_page_values_and_trends(dash_env) -> None:
    site = load_site(str(dash_env.site))
    at = sign_in("dora", query={"building": "jiefangbei-tower"})
    at.switch_page("pages/building.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="building_zh").value == "jiefangbei-tower"
    n_points = sum(1 for k in site.points if k.startswith("jiefangbei-tower/"))
    assert metrics(at)["测点数"] == str(n_points)
    rows = [r for d in at.dataframe for r in d.value.to_dict("records") if "id" in r]
    assert len(rows) == n_points
    qualities = {r["数据质量"] for r in rows}
    assert "正常" in qualities and qualities <= {"正常", "过期", "通信故障", "超量程", "配置错误", "坏值", "无数据"}
    assert len(at.get("plotly_chart")) >= 2  # trend and sub-item breakdown
    at.selectbox(key="building_zh").set_value("huaxin-building").run()
    assert at.query_params["building"] in ("huaxin-building", ["huaxin-building"])
    assert metrics(at)["测点数"] == str(sum(1 for k in site.points if k.startswith("huaxin-building/")))


def test_energy_page_totals_match_the_store(dash_env) -> None:
    from buildings.site import load_site
    from telemetry.embedded import EmbeddedStore
    from telemetry.queries import meters

    at = sign_in("dora", query={"building": "jiefangbei-tower"})
    at.switch_page("pages/energy.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="building_zh").value == "jiefangbei-tower"
    site = load_site(str(dash_env.site))
    totals = [m.energy_point for m in meters(site, "jiefangbei-tower") if m.subitem == "total"]
    assert totals
    store = EmbeddedStore(dash_env.store_path, readonly=True)
    expected = 0.0
    for key in totals:  # independent of the aggregate path: last minus first raw counter value
        good = [r.value for r in store.raw(key, 0, 4e9) if r.good]
        expected += good[-1] - good[0]
    store.close()
    shown = float(metrics(at)["近 12 个月用电"].removesuffix(" kWh").replace(",", ""))
    assert abs(shown - expected) <= max(1.0, 0.001 * expected)
    assert len(at.get("plotly_chart")) >= 6
    # retrofitted in 2025, but only days of history here: the baseline cannot be fitted, and the page says why
    # and shows the savings recorded in the programme (22.4 %) instead
    assert any("暂无法计算实测节能量" in i.value for i in at.info)
    assert metrics(at)["已登记的实测节能量"].endswith("kWh")


def test_language_switch_changes_labels(dash_env) -> None:
    at = sign_in("dora")
    assert at.title[0].value == "楼宇总览"
    # AppTest drops the entry script's sidebar from its element tree after the first run with st.navigation,
    # so the switch is driven through the session key it writes (the browser test clicks the real radio).
    assert at.radio(key="lang_choice").options == ["中文", "English"]
    at.session_state["lang"] = "en"
    at.run()
    assert not at.exception
    assert at.title[0].value == "Portfolio"
    assert "Buildings" in metrics(at) and "楼宇数" not in metrics(at)
    at.switch_page("pages/energy.py").run()
    assert "Last 12 months" in metrics(at)
    assert "Nov" in page_text(at) or "Dec" in page_text(at) or "kWh" in page_text(at)


def test_session_timeout_and_disabled_user(dash_env) -> None:
    at = sign_in("dora")
    assert at.metric
    at.session_state["last_seen"] = 0.0
    at.run()
    assert any("超时" in w.value for w in at.warning)
    assert not at.metric and "principal" not in at.session_state
    at = sign_in("tom")
    assert at.title[0].value == "楼宇总览"
    engine = make_engine(dash_env.records_url)
    set_disabled(engine, "tom")
    try:
        at.run()
        assert not at.metric and "principal" not in at.session_state
    finally:
        set_disabled(engine, "tom", False)
        engine.dispose()


def _denied(at, page: str) -> bool:
    """The page is either not in the user's menu (AppTest refuses it) or refuses the role itself."""
    try:
        at.switch_page(page)
    except ValueError:
        return True
    at.run()
    assert not at.exception, at.exception
    return any("无权" in e.value for e in at.error) and not at.metric and not at.dataframe


def test_roles_see_their_pages(dash_env) -> None:
    """Each page checks the role itself: opening a page by its path does not get around the menu."""
    from dashboard.app import PAGES as MENU

    assert not any(path == "pages/program.py" and Role.TECHNICIAN in roles for path, _, _, roles in MENU)
    at = sign_in("tom")
    at.switch_page("pages/simulators.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "仿真楼宇"
    for page in ("pages/program.py", "pages/retrofit.py", "pages/subsidies.py"):
        assert _denied(at, page), page
    alice = sign_in("alice")
    for page in ("pages/program.py", "pages/simulators.py"):
        assert _denied(alice, page), page


def test_pages_refuse_roles_even_when_run_directly(dash_env) -> None:
    """Run each restricted page as its own script with a signed-in session of the wrong role."""
    import time as _time

    from streamlit.testing.v1 import AppTest

    from tests.dashboard.conftest import APP

    root = APP.rsplit("/", 1)[0]
    cases = [("tom", "technician", None, "program"), ("alice", "owner", "yuxin-property", "program"),
             ("alice", "owner", "yuxin-property", "simulators"), ("tom", "technician", None, "retrofit")]
    for user, role, owner, page in cases:
        at = AppTest.from_file(f"{root}/pages/{page}.py", default_timeout=60)
        at.session_state["principal"] = {"username": user, "role": role, "owner_id": owner}
        at.session_state["last_seen"] = _time.time()
        at.run()
        assert not at.exception, at.exception
        assert any("无权" in e.value for e in at.error) and not at.metric and not at.dataframe, (user, page)


@pytest.mark.parametrize("page", [p for p in PAGES if p != "pages/program.py"])
def test_owner_sees_only_own_buildings(dash_env, downloads, page) -> None:
    """alice owns a share of jiefangbei-tower only: no other building on the page, in its filters, in its
    downloads, in either language, nor when the URL asks for another building (?building=huaxin-building)."""
    at = sign_in("alice")
    at.switch_page(page).run()
    assert not at.exception, at.exception
    for lang in ("zh", "en"):
        at.session_state["lang"] = lang
        at.run()
        assert not at.exception, at.exception
        text = page_text(at)
        assert not [f for f in FOREIGN if f in text], page
        for widget in [*at.selectbox, *at.multiselect]:
            assert not set(widget.options) & set(FOREIGN), page
    at.query_params["building"] = "huaxin-building"
    at.run()
    assert not at.exception, at.exception
    assert not [f for f in FOREIGN if f in page_text(at)], page
    if page != "pages/portfolio.py":  # the portfolio takes no building parameter
        assert any("No such building" in e.value for e in at.error), page
    for payload in downloads:
        assert not [f for f in FOREIGN if f.encode() in payload], page


def test_owner_portfolio_download_is_scoped(dash_env, downloads) -> None:
    at = sign_in("bob")
    assert metrics(at)["楼宇数"] == "1"
    csv = [p for p in downloads if b"chaotianmen-harbour" in p]
    others = foreign_to("chaotianmen-harbour")
    assert csv and not [f for f in others for p in downloads if f.encode() in p]


def test_owner_cannot_open_programme_even_by_page_path(dash_env) -> None:
    """The programme page refuses non-district users itself, not only through the menu."""
    from buildings.site import load_site
    from dashboard.auth import Principal, Role
    from dashboard.scope import Can, Scope

    sc = Scope(Principal("alice", Role.OWNER, "yuxin-property"), load_site(str(dash_env.site)))
    assert not sc.can(Can.PROGRAMME) and sc.building_ids == ("jiefangbei-tower",)
    at = sign_in("dora")
    at.switch_page("pages/program.py").run()
    assert not at.exception, at.exception
    assert PASSWORD not in page_text(at)


def test_alarms_page_lists_and_acknowledges(dash_env) -> None:
    """Acknowledging with a comment changes the alarm's state in the records and on the page."""
    import time as _time

    from rules.alarms import AlarmBook
    from tests.seed import alarm_event

    book = AlarmBook(dash_env.records_url)
    [applied] = book.apply([alarm_event("raise", "leak-detected", "jiefangbei-tower", "water-meter",
                                        _time.time() - 600, "safety", "critical", "漏水", "Water leak")])
    alarm_id = applied.alarm.id
    at = sign_in("dora", query={"building": "jiefangbei-tower"})
    at.switch_page("pages/alarms.py").run()
    assert not at.exception, at.exception
    active = at.dataframe[0].value.set_index("id")
    assert active.loc[alarm_id, "状态"] == "未确认" and active.loc[alarm_id, "说明"] == "漏水"
    assert int(metrics(at)["当前告警"]) == 2  # the ?building= filter: ahu-sat-high and the leak
    at.selectbox(key="alarm_choice_zh").set_value(alarm_id).run()
    assert at.get("plotly_chart"), "the chart around the alarm time"
    at.text_input(key="ack_comment").input("valve closed, plumber called")
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    a = book.get(alarm_id)
    assert a.state == "acknowledged" and a.acked_by == "dora" and a.ack_comment == "valve closed, plumber called"
    active = at.dataframe[0].value.set_index("id")
    assert active.loc[alarm_id, "状态"] == "已确认" and active.loc[alarm_id, "确认人"] == "dora"
    book.close()


def test_alarm_filters_and_history(dash_env) -> None:
    at = sign_in("dora")
    at.switch_page("pages/alarms.py").run()
    at.multiselect(key="alarm_severities_zh").set_value(["critical"]).run()
    assert not at.exception, at.exception
    history = at.dataframe[-1].value
    assert "switch-room-hot" in set(history["规则"])
    assert all(v == "严重" for d in at.dataframe for v in d.value["级别"])
    at.multiselect(key="alarm_severities_zh").set_value([]).run()
    at.multiselect(key="alarm_families_zh").set_value(["energy"]).run()
    assert all(v == "能耗" for d in at.dataframe for v in d.value["类别"])


def test_owner_cannot_acknowledge_or_see_another_owners_alarm(dash_env) -> None:
    from buildings.records.base import make_engine as mk
    from dashboard.auth import Principal
    from dashboard.scope import Scope, ScopeDenied
    from rules.alarms import AlarmBook

    book = AlarmBook(dash_env.records_url)
    harbour = [a for a in book.list() if a.building == "chaotianmen-harbour"]
    assert harbour
    engine = mk(dash_env.records_url)
    sc = Scope(Principal("alice", Role.OWNER, "yuxin-property"), load_site(str(dash_env.site)), engine=engine)
    assert {a.building for a in sc.alarms()} == {"jiefangbei-tower"}
    with pytest.raises(ScopeDenied):
        sc.acknowledge(harbour[0].id, "not mine")
    with pytest.raises(ScopeDenied):
        sc.alarms(building="chaotianmen-harbour")
    assert book.get(harbour[0].id).acked_by is None
    tech = Scope(Principal("tom", Role.TECHNICIAN), load_site(str(dash_env.site)), engine=engine)
    with pytest.raises(ScopeDenied):
        tech.acknowledge(harbour[0].id, "read only")
    engine.dispose()
    book.close()


@pytest.mark.parametrize("page", ["pages/portfolio.py", "pages/building.py", "pages/energy.py"])
def test_unreachable_store_is_a_message_not_a_traceback(dash_env, monkeypatch, page) -> None:
    """InfluxDB configured on a port where nothing listens: the page says so and still shows the rest."""
    from retrofit.devservers import free_port

    monkeypatch.setenv("RETROFIT_INFLUX_URL", f"http://127.0.0.1:{free_port()}")
    at = sign_in("dora", query={"building": "jiefangbei-tower"})
    at.switch_page(page).run()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning]
    assert any("遥测数据库暂不可用" in w and "not reachable" in w for w in warnings), warnings
    if page == "pages/building.py":
        assert metrics(at)["测点数"] == "151"  # the site model still answers
    if page == "pages/portfolio.py":
        assert metrics(at)["楼宇数"] == "4"


def test_portfolio_eui_in_one_query_matches_telemetry_queries(dash_env) -> None:
    """The portfolio's batched EUI gives what telemetry.queries.energy_use_intensity gives per building."""
    import time as _time

    from dashboard import energy
    from dashboard.auth import Principal
    from dashboard.scope import Scope
    from insight.portfolio import portfolio_eui
    from telemetry.embedded import EmbeddedStore

    store = EmbeddedStore(dash_env.store_path, readonly=True)
    sc = Scope(Principal("dora", Role.DISTRICT), load_site(str(dash_env.site)), store=store)
    now = _time.time()
    batched = portfolio_eui(sc, now)
    assert set(batched) == set(sc.building_ids)
    for bid in sc.building_ids:
        single, days = energy.eui(sc, bid, now)
        assert batched[bid].covered_days == days and single is not None
        assert abs((batched[bid].kwh_per_m2_year or 0) - single) < 1e-6 * single, bid
    owner = Scope(Principal("alice", Role.OWNER, "yuxin-property"), sc.site, store=store)
    assert set(portfolio_eui(owner, now)) == {"jiefangbei-tower"}
    store.close()


def test_programme_page_and_exports(dash_env, downloads) -> None:
    import io

    import openpyxl

    from buildings.records.base import session_factory
    from buildings.records.models import RetrofitProject

    engine = make_engine(dash_env.records_url)
    with session_factory(engine)() as s:
        n_projects = s.query(RetrofitProject).count()
    engine.dispose()
    at = sign_in("dora")
    at.switch_page("pages/program.py").run()
    assert not at.exception, at.exception
    assert metrics(at)["项目数"] == str(n_projects) and n_projects >= 2
    ranking = at.dataframe[-1].value
    assert list(ranking["排名"]) == sorted(ranking["排名"])
    xlsx = [p for p in downloads if p[:2] == b"PK"]
    assert xlsx, "an Excel workbook was offered"
    wb = openpyxl.load_workbook(io.BytesIO(xlsx[-1]))
    assert wb.sheetnames == ["projects", "ranking"] and wb["projects"].max_row == n_projects + 1
    assert any("解放碑渝信大厦".encode() in p for p in downloads if p[:2] != b"PK")


def test_retrofit_and_subsidy_pages_for_an_owner(dash_env) -> None:
    from buildings.subsidy.policy import POLICY_DIR, load_policies

    at = sign_in("alice")
    at.switch_page("pages/retrofit.py").run()
    assert not at.exception, at.exception
    m = metrics(at)
    assert m["项目数"] == "1" and m["改造阶段"] != "-"
    assert at.get("plotly_chart"), "the milestone Gantt chart"
    assert any("jfb-2024-smart-green" in s.value or "解放碑" in s.value for s in at.subheader)
    at.switch_page("pages/subsidies.py").run()
    assert not at.exception, at.exception
    policies = load_policies(POLICY_DIR)
    assert len(at.expander) == len(policies)
    conditions = [d.value for d in at.dataframe]
    assert conditions and all({"条件", "状态", "依据"} <= set(c.columns) for c in conditions)
    assert any(c["依据"].str.len().gt(0).all() for c in conditions)
    assert metrics(at)["已拨付"].startswith("¥")


def test_dashboard_totals_agree_with_telemetry_queries(dash_env) -> None:
    """The dashboard queries only the whole-building meters; the result is telemetry.queries' building total."""
    import time as _time

    from dashboard import energy
    from dashboard.auth import Principal
    from dashboard.scope import Scope
    from telemetry import queries
    from telemetry.embedded import EmbeddedStore

    store = EmbeddedStore(dash_env.store_path, readonly=True)
    site = load_site(str(dash_env.site))
    sc = Scope(Principal("dora", Role.DISTRICT), site, store=store)
    now = _time.time()
    for bid in sc.building_ids:
        ours = energy.energy(sc, bid, now - 3 * 86400, now, 86400)
        theirs = queries.building_energy(store, site, bid, now - 3 * 86400, now, "day")
        assert [round(v, 6) for v in ours.to_list()] == [round(v, 6) for _, v in theirs], bid
        i = queries.energy_use_intensity(store, site, bid, now - 365 * 86400, now)
        assert abs(energy.eui(sc, bid, now)[0] - i.kwh_per_m2_year) < 1e-6 * i.kwh_per_m2_year
    store.close()
