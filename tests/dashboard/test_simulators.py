"""The Simulators page starts a real `retrofit simulate` for one building, injects and clears a fault over the
simulator's control endpoint, and stops it again."""

from __future__ import annotations

import pytest

from dashboard.simctl import SimControl
from tests.dashboard.conftest import sign_in
from tests.dashboard.test_page_text import problems, visible_text

BUILDING = "daping-makerworks"


def test_start_inject_clear_stop(dash_env) -> None:
    ctl = SimControl(dash_env.data_dir)
    at = sign_in("tom")
    at.switch_page("pages/simulators.py").run()
    assert not at.exception, at.exception
    try:
        at.selectbox(key="sim_building_zh").set_value(BUILDING).run()
        at.button(key="sim_start").click().run(timeout=120)
        assert not at.exception, at.exception
        status = ctl.status(BUILDING)
        assert status.running and status.pid, [e.value for e in at.error]
        table = at.dataframe[0].value.set_index("id")
        assert table.loc[BUILDING, "运行中"] == "✓"

        point = f"{BUILDING}/rtu1-sat"
        assert point in at.selectbox(key="sim_target").options
        at.selectbox(key="sim_kind").set_value("sensor_stuck")
        at.selectbox(key="sim_target").set_value(point)
        submit = [b for b in at.button if b.label == "注入故障"]
        assert submit
        submit[0].click().run(timeout=60)
        assert not at.exception, at.exception
        faults = ctl.status(BUILDING).faults
        assert [f["kind"] for f in faults] == ["sensor_stuck"] and faults[0]["target"] == point
        assert any(f["id"] in (m.value or "") for m in at.markdown for f in faults)
        texts = visible_text(at)  # a running simulator with a fault reads as words too
        assert "传感器卡死" in " ".join(texts) and not problems(texts, "zh"), problems(texts, "zh")

        at.button(key=f"sim_clear_{faults[0]['id']}").click().run(timeout=60)
        assert ctl.status(BUILDING).faults == []
        at.button(key="sim_stop").click().run(timeout=60)
        assert not ctl.status(BUILDING).running
    finally:
        ctl.stop(BUILDING)


def test_bad_fault_shows_the_simulators_reason(dash_env) -> None:
    """An error from the simulator is a message naming what is wrong, not a traceback."""
    ctl = SimControl(dash_env.data_dir)
    from dashboard.simctl import SimControlError

    with pytest.raises(SimControlError, match="no simulator running"):
        ctl.inject("huaxin-building", "sensor_stuck", "huaxin-building/nope")
