"""Simulators (technicians): start and stop simulated buildings, inject and clear faults, and see what the
collectors read from them (the latest readings in the store)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import simctl, ui
from dashboard.i18n import EMPTY
from dashboard.scope import Can, Unavailable

t = ui.tr()
sc = ui.scope(require=Can.SIMULATE)
st.title(t("page.simulators"))
ctl = simctl.SimControl(ui.runtime().settings.data_dir)
files = {f.building.id: f for f in sc.buildings()}
paths = dict(zip([f.building.id for f in sc.site.files], sc.site.paths, strict=False)) if sc.site.paths else {}
names = {bid: t.pick(f.building.name.zh, f.building.name.en) for bid, f in files.items()}

st.subheader(t("sim.buildings"))
statuses = {bid: ctl.status(bid) for bid in files}
st.dataframe(pd.DataFrame([{t("col.building"): names[bid], "id": bid,
                            t("col.running"): t.yn(s.running), "pid": t.fmt(s.pid),
                            t("sim.faults"): t.sep.join(f"{t.term('fault', f['kind'])} @ {f['target']}"
                                                          for f in s.faults) or EMPTY}
                           for bid, s in statuses.items()]), width="stretch", hide_index=True, key="sim_table")
bid = st.selectbox(t("col.building"), list(files), format_func=lambda b: f"{names[b]} ({b})",
                   key=f"sim_building_{t.lang}")
status = statuses[bid]
c1, c2 = st.columns(2)
if not status.running and c1.button(t("sim.start"), key="sim_start", disabled=bid not in paths):
    try:
        with st.spinner(t("sim.start")):
            ctl.start(bid, paths[bid])
        st.session_state["sim_msg"] = t("sim.done", what=f"{t('sim.start')} {bid}")
    except simctl.SimControlError as exc:
        st.session_state["sim_err"] = str(exc)
    st.rerun()
if status.running and c2.button(t("sim.stop"), key="sim_stop"):
    ctl.stop(bid)
    st.session_state["sim_msg"] = t("sim.done", what=f"{t('sim.stop')} {bid}")
    st.rerun()
if msg := st.session_state.pop("sim_msg", None):
    st.success(msg)
if err := st.session_state.pop("sim_err", None):
    st.error(t("sim.unreachable", error=err))
if status.error:
    st.warning(t("sim.unreachable", error=status.error))

if status.running:
    st.subheader(t("sim.faults"))
    bf = files[bid]
    targets = ([f"{bid}/{p.id}" for _eq, p in bf.points()] + [f"{bid}/{d.id}" for d in bf.devices]
               + [f"{bid}/{eq.id}" for eq in bf.equipment])
    with st.form("inject_form"):
        c1, c2, c3 = st.columns(3)
        kind = c1.selectbox(t("sim.scenario"), simctl.FAULT_KINDS, key="sim_kind",
                            format_func=lambda k: t.term("fault", k))
        target = c2.selectbox(t("sim.target"), targets, key="sim_target")
        minutes = c3.number_input(t("sim.minutes"), min_value=0, max_value=24 * 60, value=0, key="sim_minutes")
        if st.form_submit_button(t("sim.inject")):
            try:
                f = ctl.inject(bid, kind, target, minutes * 60.0 or None)
                st.session_state["sim_msg"] = t("sim.done", what=f"{t('sim.inject')} {t.term('fault', f['kind'])} "
                                                                 f"{f['target']}")
            except simctl.SimControlError as exc:
                st.session_state["sim_err"] = str(exc)
            st.rerun()
    for f in status.faults:
        c1, c2 = st.columns([4, 1])
        c1.write(f"`{f['id']}` {t.term('fault', f['kind'])} → {f['target']}")
        if c2.button(t("sim.clear"), key=f"sim_clear_{f['id']}"):
            try:
                ctl.clear(bid, f["id"])
                st.session_state["sim_msg"] = t("sim.done", what=f"{t('sim.clear')} {f['id']}")
            except simctl.SimControlError as exc:
                st.session_state["sim_err"] = str(exc)
            st.rerun()

st.subheader(t("sim.collected"))
try:
    latest = sc.latest(bid)
except Unavailable as exc:
    st.warning(t("app.store_unavailable", error=str(exc)))
    latest = {}
tz = files[bid].building.timezone
rows = [{t("col.point"): k.split("/", 1)[1], t("col.value"): t.fmt(r.value, "num1"),
         t("col.quality"): t(f"quality.{r.quality}"),
         t("col.time"): t.datetime(r.ts, tz)} for k, r in sorted(latest.items())]
if rows:
    st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True, key="sim_latest")
else:
    st.info(t("app.no_data"))
