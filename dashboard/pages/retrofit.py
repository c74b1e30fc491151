"""Retrofit: each project's measures, stages, milestone timeline (Gantt), documents and progress."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import ui
from dashboard.scope import Can, Unavailable
from insight import retrofit as records

t = ui.tr()
sc = ui.scope(require=Can.RECORDS)
st.title(t("page.retrofit"))
try:
    projects = records.projects(sc)
except Unavailable as exc:
    st.info(t("app.feature_missing", what=str(exc)))
    st.stop()
wanted = st.query_params.get("building")
if wanted is not None and not sc.allows(wanted):
    st.error(t("app.not_found"))
    wanted = None
if wanted:
    projects = [p for p in projects if p.building == wanted]
if not projects:
    st.info(t("retrofit.none"))
    st.stop()
names = {f.building.id: t.pick(f.building.name.zh, f.building.name.en) for f in sc.buildings()}

m1, m2, m3 = st.columns(3)
m1.metric(t("program.projects"), t.num(len(projects), 0))
m2.metric(t("retrofit.budget"), t.money(sum(p.budget or 0 for p in projects)))
m3.metric(t("retrofit.progress"), t.pct(sum(p.progress for p in projects) / len(projects)))

for p in projects:
    st.subheader(f"{names.get(p.building, p.building)} · {t.pick(p.name.zh, p.name.en)}")
    c1, c2, c3 = st.columns(3)
    c1.metric(t("col.stage"), t.pick(p.stage.zh, p.stage.en))
    c2.metric(t("col.budget"), t.money(p.budget))
    c3.metric(t("col.progress"), t.pct(p.progress))
    st.progress(min(max(p.progress, 0.0), 1.0))
    if p.measures:
        st.markdown(f"**{t('retrofit.measures')}**")
        st.dataframe(pd.DataFrame([{t("col.measure"): t.term("measure", m.category),
                                    t("col.description"): t.pick(m.name.zh, m.name.en),
                                    t("col.budget"): t.money(m.cost)} for m in p.measures]),
                     width="stretch", hide_index=True)
    ms = [m for m in p.milestones if m.start and m.end]
    if ms:
        df = pd.DataFrame([{t("col.milestone"): t.pick(m.name.zh, m.name.en), t("col.start"): m.start,
                            t("col.end"): m.end, t("col.stage"): t.pick(m.stage.zh, m.stage.en),
                            t("col.status"): t("subsidy.met") if m.done else t("subsidy.pending")} for m in ms])
        fig = px.timeline(df, x_start=t("col.start"), x_end=t("col.end"), y=t("col.milestone"),
                          color=t("col.status"), height=80 + 28 * len(ms))
        fig.update_yaxes(autorange="reversed")
        fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10})
        st.markdown(f"**{t('retrofit.timeline')}**")
        st.plotly_chart(fig, width="stretch", key=f"gantt_{p.id}")
    if p.documents:
        st.markdown(f"**{t('retrofit.documents')}**")
        st.dataframe(pd.DataFrame([{t("col.document"): d.name, t("col.type"): t.term("doc", d.type),
                                    "SHA-256": d.sha256} for d in p.documents]), width="stretch", hide_index=True)
