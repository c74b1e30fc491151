"""Alarms: active and history, filters (building, family, severity), acknowledge with a comment, and a small
chart of what the rule saw around the alarm time."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import ui
from dashboard.scope import Can, ScopeDenied, Unavailable
from telemetry.store import Agg

t = ui.tr()
sc = ui.scope()
st.title(t("page.alarms"))
files = sc.buildings()
if not files:
    st.info(t("app.no_buildings"))
    st.stop()
names = {f.building.id: t.pick(f.building.name.zh, f.building.name.en) for f in files}
tz_of = {f.building.id: f.building.timezone for f in files}

c1, c2, c3 = st.columns(3)
ids = list(names)
wanted = st.query_params.get("building")
if wanted is not None and wanted not in ids:
    st.error(t("app.not_found"))
    wanted = None
pick_b = c1.multiselect(t("alarms.filter_building"), ids, default=[wanted] if wanted else [],
                        format_func=names.get, key="alarm_buildings")
families = ["sensor_health", "energy", "safety"]
pick_f = c2.multiselect(t("alarms.filter_family"), families, format_func=lambda f: t(f"family.{f}"),
                        key="alarm_families")
severities = ["critical", "fault", "warning", "advisory"]
pick_s = c3.multiselect(t("alarms.filter_severity"), severities, format_func=lambda s: t(f"severity.{s}"),
                        key="alarm_severities")

try:
    alarms = sc.alarms(active=None, limit=2000)
except Unavailable as exc:
    st.info(t("app.feature_missing", what=str(exc)))
    st.stop()
alarms = [a for a in alarms if (not pick_b or a.building in pick_b) and (not pick_f or a.family in pick_f)
          and (not pick_s or a.severity in pick_s)]


def row(a) -> dict:  # noqa: ANN001 - an alarm record from rules.alarms
    return {
        "id": a.id, t("col.building"): names.get(a.building, a.building),
        t("col.severity"): t(f"severity.{a.severity}"), t("col.family"): t(f"family.{a.family}"),
        t("col.rule"): a.rule_id, t("col.message"): t.pick(a.message_zh, a.message_en),
        t("col.state"): t(f"state.{a.state}"), t("col.raised"): t.datetime(a.raised_at, tz_of[a.building]),
        t("col.acked_by"): a.acked_by or "", t("col.comment"): a.ack_comment or "",
    }


active = [a for a in alarms if a.state != "cleared"]
history = [a for a in alarms if a.state == "cleared"]
m1, m2 = st.columns(2)
m1.metric(t("alarms.active"), t.num(len(active), 0))
m2.metric(t("alarms.history"), t.num(len(history), 0))
tab_a, tab_h = st.tabs([t("alarms.active"), t("alarms.history")])
with tab_a:
    if active:
        st.dataframe(pd.DataFrame([row(a) for a in active]), width="stretch", hide_index=True, key="active_table")
    else:
        st.info(t("alarms.none"))
with tab_h:
    if history:
        st.dataframe(pd.DataFrame([row(a) for a in history]), width="stretch", hide_index=True, key="history_table")
    else:
        st.info(t("alarms.none"))

if not alarms:
    st.stop()
by_id = {a.id: a for a in alarms}
chosen = st.selectbox(t("alarms.choose"), list(by_id), key="alarm_choice",
                      format_func=lambda i: f"#{i} {names.get(by_id[i].building)} · "
                                            f"{t.pick(by_id[i].message_zh, by_id[i].message_en)}")
alarm = by_id[chosen]
if alarm.state == "active" and sc.can(Can.ACKNOWLEDGE):
    with st.form("ack_form", clear_on_submit=True):
        comment = st.text_input(t("alarms.ack_comment"), key="ack_comment")
        if st.form_submit_button(t("alarms.ack")):
            try:
                sc.acknowledge(alarm.id, comment)
                st.success(t("alarms.ack_done", id=alarm.id))
                st.rerun()
            except ScopeDenied:
                st.error(t("alarms.ack_denied"))
elif alarm.state == "active":
    st.caption(t("alarms.ack_denied"))

st.subheader(t("alarms.context"))
keys = [k for k in (getattr(alarm, "points", None) or [alarm.point] if getattr(alarm, "point", None) else [])
        if k in sc.site.points]
if keys:
    with ui.guard(t):
        start, end = alarm.raised_at - 6 * 3600, alarm.raised_at + 2 * 3600
        data = sc.aggregate(keys, start, end, 300, Agg.MEAN, tz_of[alarm.building])
        fig = go.Figure()
        for k, pts in data.items():
            if pts:
                x = pd.to_datetime([p[0] for p in pts], unit="s", utc=True).tz_convert(tz_of[alarm.building])
                fig.add_trace(go.Scatter(x=x, y=[p[1] for p in pts], mode="lines", name=k.split("/", 1)[1]))
        fig.add_vline(x=pd.Timestamp(alarm.raised_at, unit="s", tz="UTC").tz_convert(tz_of[alarm.building]),
                      line_dash="dash", line_color="red")
        fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"orientation": "h"})
        st.plotly_chart(fig, width="stretch", key="alarm_context")
else:
    st.info(t("app.no_data"))
