"""AppTest for every page: renders without exception, shows the expected metrics, language switch, session
timeout; scoping: an owner never sees another owner's building on any page, filter, URL parameter or download."""

from __future__ import annotations

import pytest

from buildings.records.base import make_engine
from dashboard.auth import Role, set_disabled
from telemetry.embedded import EmbeddedStore
from tests.dashboard.conftest import FOREIGN, PASSWORD, page_text, sign_in

PAGES = ["pages/portfolio.py", "pages/building.py", "pages/energy.py", "pages/alarms.py", "pages/retrofit.py",
         "pages/subsidies.py", "pages/program.py"]


def metrics(at) -> dict[str, str]:  # noqa: ANN001
    return {m.label: m.value for m in at.metric}


def test_wrong_password_is_refused(dash_env) -> None:  # noqa: ANN001
    at = sign_in("dora", "not-the-password")
    assert not at.exception
    assert any("用户名或密码错误" in e.value for e in at.error)
    assert not at.metric


def test_portfolio_metrics_district(dash_env) -> None:  # noqa: ANN001
    at = sign_in("dora")
    assert not at.exception, at.exception
    m = metrics(at)
    assert m["楼宇数"] == "3" and m["总建筑面积 (m²)"] == "52,000"
    table = at.dataframe[0].value
    assert set(table["楼宇编号"]) == {"alpha-tower", "beta-plaza", "gamma-court"}
    # EUI from the store's daily deltas, annualised: alpha draws 400 kW busy / 120 kW idle on 24,000 m2
    eui = float(table.set_index("楼宇编号").loc["alpha-tower", "能耗强度 (kWh/m²·a)"])
    assert 60 < eui < 160
    assert at.get("plotly_chart"), "the map is drawn"


def test_building_page_values_and_energy(dash_env) -> None:  # noqa: ANN001
    at = sign_in("dora")
    at.switch_page("pages/building.py").run()
    assert not at.exception, at.exception
    m = metrics(at)
    assert m["测点数"] == "5"
    assert at.selectbox(key="building").value == "alpha-tower"
    tables = [d.value for d in at.dataframe]
    main = next(t for t in tables if "total-kw" in set(t["id"]))
    assert main.set_index("id").loc["total-kw", "数据质量"] == "正常"
    at.selectbox(key="building").set_value("beta-plaza").run()
    assert at.query_params["building"] in ("beta-plaza", ["beta-plaza"])
    quality = {r["id"]: r["数据质量"] for d in at.dataframe for r in d.value.to_dict("records") if "id" in r}
    assert quality["zone-temp"] == "通信故障"  # the last reading was a comm failure
    assert len(at.get("plotly_chart")) >= 2  # trend and sub-item breakdown


def test_energy_page_totals_match_the_store(dash_env) -> None:  # noqa: ANN001
    at = sign_in("dora")
    at.switch_page("pages/energy.py").run()
    assert not at.exception, at.exception
    store = EmbeddedStore(dash_env.store_path, readonly=True)
    raw = store.raw("alpha-tower/total-kwh", 0, 4e9)
    store.close()
    expected = raw[-1].value - raw[0].value
    shown = float(metrics(at)["近 12 个月用电"].removesuffix(" kWh").replace(",", ""))
    assert abs(shown - expected) <= 1.0
    assert len(at.get("plotly_chart")) >= 6
    assert any("尚未完成改造" in i.value for i in at.info)


def test_language_switch_changes_labels(dash_env) -> None:  # noqa: ANN001
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


def test_session_timeout_and_disabled_user(dash_env) -> None:  # noqa: ANN001
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


def _denied(at, page: str) -> bool:  # noqa: ANN001
    """The page is either not in the user's menu (AppTest refuses it) or refuses the role itself."""
    try:
        at.switch_page(page)
    except ValueError:
        return True
    at.run()
    assert not at.exception, at.exception
    return any("无权" in e.value for e in at.error) and not at.metric and not at.dataframe


def test_roles_see_their_pages(dash_env) -> None:  # noqa: ANN001
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


def test_pages_refuse_roles_even_when_run_directly(dash_env) -> None:  # noqa: ANN001
    """Run each restricted page as its own script with a signed-in session of the wrong role."""
    import time as _time

    from streamlit.testing.v1 import AppTest

    from tests.dashboard.conftest import APP

    root = APP.rsplit("/", 1)[0]
    for user, role, owner, page in [("tom", "technician", None, "program"), ("alice", "owner", "owner-a", "program"),
                                    ("alice", "owner", "owner-a", "simulators"), ("tom", "technician", None,
                                                                                  "retrofit")]:
        at = AppTest.from_file(f"{root}/pages/{page}.py", default_timeout=60)
        at.session_state["principal"] = {"username": user, "role": role, "owner_id": owner}
        at.session_state["last_seen"] = _time.time()
        at.run()
        assert not at.exception, at.exception
        assert any("无权" in e.value for e in at.error) and not at.metric and not at.dataframe, (user, page)


@pytest.mark.parametrize("page", [p for p in PAGES if p != "pages/program.py"])
def test_owner_sees_only_own_buildings(dash_env, downloads, page) -> None:  # noqa: ANN001
    """alice owns alpha-tower only; beta-plaza and gamma-court belong to others."""
    at = sign_in("alice")
    at.switch_page(page).run()
    assert not at.exception, at.exception
    for lang in ("zh", "en"):
        at.session_state["lang"] = lang
        at.run()
        text = page_text(at)
        assert not [f for f in FOREIGN if f in text], page
    for payload in downloads:
        assert not [f for f in FOREIGN if f.encode() in payload], page
    for box in at.selectbox:
        assert not set(box.options) & {"beta-plaza", "gamma-court"}


@pytest.mark.parametrize("page", [p for p in PAGES if p != "pages/program.py"])
def test_owner_url_parameter_cannot_open_another_building(dash_env, downloads, page) -> None:  # noqa: ANN001
    at = sign_in("alice", query={"building": "beta-plaza"})
    at.switch_page(page).run()
    at.query_params["building"] = "beta-plaza"
    at.run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert not [f for f in FOREIGN if f in text]
    for payload in downloads:
        assert not [f for f in FOREIGN if f.encode() in payload]


def test_owner_portfolio_download_is_scoped(dash_env, downloads) -> None:  # noqa: ANN001
    at = sign_in("bob")
    assert metrics(at)["楼宇数"] == "2"
    csv = [p for p in downloads if b"gamma-court" in p]
    assert csv and all(b"alpha-tower" not in p for p in downloads)


def test_owner_cannot_open_programme_even_by_page_path(dash_env) -> None:  # noqa: ANN001
    """The programme page refuses non-district users itself, not only through the menu."""
    from buildings.site import load_site
    from dashboard.auth import Principal, Role
    from dashboard.scope import Can, Scope

    sc = Scope(Principal("alice", Role.OWNER, "owner-a"), load_site(str(dash_env.site)))
    assert not sc.can(Can.PROGRAMME) and sc.building_ids == ("alpha-tower",)
    at = sign_in("dora")
    at.switch_page("pages/program.py").run()
    assert not at.exception, at.exception
    assert PASSWORD not in page_text(at)
