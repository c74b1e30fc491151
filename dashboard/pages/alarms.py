"""Alarms: active and history, filters (building, family, severity), acknowledge with a comment, and a small
chart of what the rule saw around the alarm time. A flood indicator says when a building raised more alarms than
flood control annunciates (ISA-18.2) and how many were suppressed; grouped alarms list their points."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import ui
from dashboard.scope import Can, ScopeDenied, Unavailable
from rules.alarms import FloodControl
from rules.model import SEVERITY_RANK, Family, Severity
from telemetry.store import Agg

if TYPE_CHECKING:
    from rules.alarms import Alarm

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
                        format_func=names.get, key=f"alarm_buildings_{t.lang}")
families = [f.value for f in Family]
pick_f = c2.multiselect(t("alarms.filter_family"), families, format_func=lambda f: t(f"family.{f}"),
                        key=f"alarm_families_{t.lang}")
severities = [s.value for s in sorted(Severity, key=SEVERITY_RANK.__getitem__, reverse=True)]
pick_s = c3.multiselect(t("alarms.filter_severity"), severities, format_func=lambda s: t(f"severity.{s}"),
                        key=f"alarm_severities_{t.lang}")

show_held = st.toggle(t("alarms.show_suppressed"), key=f"alarm_suppressed_{t.lang}")
try:
    alarms = sc.alarms(building=None, family=pick_f, severity=pick_s, limit=2000, include_suppressed=show_held)
    flood_control = FloodControl.from_settings(ui.settings())
    floods = sc.alarm_floods(control=flood_control)
except Unavailable as exc:
    st.info(t("app.feature_missing", what=str(exc)))
    st.stop()
if pick_b:
    alarms = [a for a in alarms if a.building in pick_b]
for fl in floods:
    if fl.active:
        st.error(t("alarms.flood_active", building=names.get(fl.building, fl.building), n=fl.recent,
                   minutes=t.num(flood_control.window_s / 60, 0), limit=fl.limit), icon=":material/warning:")
    if fl.suppressed:
        st.warning(t("alarms.flood_suppressed", building=names.get(fl.building, fl.building), n=fl.suppressed,
                     rules=", ".join(f"{r} x{n}" for r, n in sorted(fl.by_rule.items()))), icon=":material/filter_alt:")


def where(a: Alarm) -> str:
    """The subject, or a grouped alarm's points."""
    if not a.points:
        return a.subject
    more = " …" if len(a.points) > 5 else ""
    return t("alarms.group", n=len(a.points), points=", ".join(a.points[:5]) + more)


def row(a: Alarm) -> dict:
    tz = tz_of[a.building]
    return {
        "id": a.id, t("col.building"): names.get(a.building, a.building),
        t("col.severity"): t(f"severity.{a.severity}"), t("col.family"): t(f"family.{a.family}"),
        t("col.rule"): a.rule, t("col.equipment"): where(a), t("col.message"): t.pick(a.message_zh, a.message_en),
        t("col.state"): t(f"state.{a.state}"), t("col.raised"): t.datetime(a.raised_at, tz),
        t("col.acked_by"): a.acked_by or "", t("col.comment"): a.ack_comment or "",
    }


open_alarms = [a for a in alarms if a.state != "cleared"]
history = [a for a in alarms if a.state == "cleared"]
m1, m2, m3 = st.columns(3)
m1.metric(t("alarms.active"), t.num(len(open_alarms), 0))
m2.metric(t("state.raised"), t.num(sum(a.state == "raised" for a in open_alarms), 0))
m3.metric(t("alarms.history"), t.num(len(history), 0))
tab_a, tab_h = st.tabs([t("alarms.active"), t("alarms.history")])
with tab_a:
    if open_alarms:
        st.dataframe(pd.DataFrame([row(a) for a in open_alarms]), width="stretch", hide_index=True,
                     key="active_table")
    else:
        st.info(t("alarms.none"))
with tab_h:
    if history:
        st.dataframe(pd.DataFrame([row(a) for a in history]), width="stretch", hide_index=True,
                     key="history_table")
    else:
        st.info(t("alarms.none"))
if not alarms:
    st.stop()

by_id = {a.id: a for a in alarms}
chosen = st.selectbox(t("alarms.choose"), list(by_id), key=f"alarm_choice_{t.lang}",
                      format_func=lambda i: f"#{i} {names.get(by_id[i].building)} · {t(f'state.{by_id[i].state}')} · "
                                            f"{t.pick(by_id[i].message_zh, by_id[i].message_en)}")
alarm = by_id[chosen]
if alarm.state == "raised" and sc.can(Can.ACKNOWLEDGE):
    with st.form("ack_form", clear_on_submit=True):
        comment = st.text_input(t("alarms.ack_comment"), key="ack_comment")
        if st.form_submit_button(t("alarms.ack")):
            try:
                sc.acknowledge(alarm.id, comment)
                st.session_state["ack_done"] = alarm.id
                st.rerun()
            except ScopeDenied:
                st.error(t("alarms.ack_denied"))
elif alarm.state == "raised":
    st.caption(t("alarms.ack_denied"))
if st.session_state.pop("ack_done", None) is not None:
    st.success(t("alarms.ack_done", id=alarm.id))

st.subheader(t("alarms.context"))
bf = sc.building(alarm.building)
subject_points = [f"{alarm.building}/{p.id}" for eq in bf.equipment for p in eq.points
                  if p.id in alarm.points or p.id == alarm.subject
                  or (not alarm.points and eq.id in (alarm.subject, alarm.equipment) and p.unit != "bool")]
keys = subject_points[:6]
if keys:
    with ui.guard(t):
        tz = tz_of[alarm.building]
        start, end = alarm.raised_at - 6 * 3600, alarm.raised_at + 2 * 3600
        data = sc.aggregate(keys, start, end, 900, Agg.MEAN, tz)
        fig = go.Figure()
        for k, pts in data.items():
            if pts:
                x = pd.to_datetime([p[0] for p in pts], unit="s", utc=True).tz_convert(tz)
                fig.add_trace(go.Scatter(x=x, y=[p[1] for p in pts], mode="lines", name=k.split("/", 1)[1]))
        fig.add_vline(x=pd.Timestamp(int(alarm.raised_at), unit="s", tz="UTC").tz_convert(tz).to_pydatetime(),
                      line_dash="dash", line_color="red")
        fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"orientation": "h"})
        st.plotly_chart(fig, width="stretch", key="alarm_context")
        if alarm.values:
            st.caption(" · ".join(f"{k} = {t.fmt(v)}" for k, v in alarm.values.items()))
else:
    st.info(t("app.no_data"))
