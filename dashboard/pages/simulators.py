"""Simulators (technicians): start and stop simulated buildings, inject and clear faults, and see what the
collectors read from them (the latest readings in the store)."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from dashboard import simctl, ui
from dashboard.scope import Can, Unavailable

t = ui.tr()
sc = ui.scope(require=Can.SIMULATE)
st.title(t("page.simulators"))
default_url = os.environ.get("RETROFIT_SIMULATOR_URL", "http://127.0.0.1:8700")
url = st.text_input(t("sim.endpoint"), value=default_url, key="sim_url")
client = simctl.SimControl(url)
try:
    status = client.status()
except simctl.SimControlError as exc:
    st.warning(t("sim.unreachable", error=str(exc)))
    status = None

if status is not None:
    st.subheader(t("sim.buildings"))
    rows = [{t("col.building"): b["id"], t("col.running"): "✓" if b.get("running") else "-",
             t("sim.faults"): ", ".join(f["scenario"] for f in b.get("faults", []))} for b in status["buildings"]]
    st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True, key="sim_table")
    ids = [b["id"] for b in status["buildings"]]
    c1, c2, c3 = st.columns(3)
    bid = c1.selectbox(t("col.building"), ids, key="sim_building")
    if c2.button(t("sim.start"), key="sim_start"):
        client.start(bid)
        st.success(t("sim.done", what=f"{t('sim.start')} {bid}"))
    if c3.button(t("sim.stop"), key="sim_stop"):
        client.stop(bid)
        st.success(t("sim.done", what=f"{t('sim.stop')} {bid}"))
    scenarios = status.get("scenarios", [])
    if scenarios:
        c1, c2 = st.columns(2)
        scen = c1.selectbox(t("sim.scenario"), scenarios, key="sim_scenario")
        if c2.button(t("sim.inject"), key="sim_inject"):
            client.inject(bid, scen)
            st.success(t("sim.done", what=f"{t('sim.inject')} {scen}"))
    current = next((b for b in status["buildings"] if b["id"] == bid), {}).get("faults", [])
    for f in current:
        if st.button(f"{t('sim.clear')}: {f['scenario']}", key=f"sim_clear_{f['id']}"):
            client.clear(bid, f["id"])
            st.success(t("sim.done", what=f"{t('sim.clear')} {f['scenario']}"))

st.subheader(t("sim.collected"))
bid = ui.choose_building(sc, t, key="sim_read_building")
if bid:
    try:
        latest = sc.latest(bid)
    except Unavailable as exc:
        st.warning(t("app.store_unavailable", error=str(exc)))
        latest = {}
    tz = sc.building(bid).building.timezone
    rows = [{t("col.point"): k.split("/", 1)[1], t("col.value"): r.value, t("col.quality"): t(f"quality.{r.quality}"),
             t("col.time"): t.datetime(r.ts, tz)} for k, r in sorted(latest.items())]
    if rows:
        st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True, key="sim_latest")
    else:
        st.info(t("app.no_data"))
