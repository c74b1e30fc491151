"""District programme (district users): projects by stage, budget committed and paid, savings achieved, the
priority ranking of buildings not yet retrofitted, and CSV / Excel export."""

from __future__ import annotations

import io

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import ui
from dashboard.scope import Can, Unavailable
from insight import retrofit as records

t = ui.tr()
sc = ui.scope(require=Can.PROGRAMME)
st.title(t("page.program"))
try:
    projects = records.projects(sc)
    ranking = records.ranking(sc)
except Unavailable as exc:
    st.info(t("app.feature_missing", what=str(exc)))
    st.stop()
names = {f.building.id: t.pick(f.building.name.zh, f.building.name.en) for f in sc.buildings()}
m1, m2, m3, m4 = st.columns(4)
m1.metric(t("program.projects"), t.num(len(projects), 0))
m2.metric(t("program.committed"), t.money(sum(p.budget or 0 for p in projects)))
m3.metric(t("program.paid"), t.money(sum(p.paid or 0 for p in projects)))
m4.metric(t("program.savings"), f"{t.num(sum(p.savings_kwh or 0 for p in projects), 0)} kWh")

table = pd.DataFrame([{t("col.building"): names.get(p.building, p.building),
                       t("col.project"): t.pick(p.name.zh, p.name.en),
                       t("col.stage"): t.pick(p.stage.zh, p.stage.en), t("col.budget"): p.budget,
                       t("col.paid"): p.paid, t("col.savings"): p.savings_kwh,
                       t("col.progress"): round(100 * p.progress, 1)} for p in projects])
if not table.empty:
    by_stage = table.groupby(t("col.stage")).size().reset_index(name=t("program.projects"))
    st.subheader(t("program.projects_by_stage"))
    st.plotly_chart(px.bar(by_stage, x=t("col.stage"), y=t("program.projects"), height=300), width="stretch",
                    key="by_stage")
    st.dataframe(table, width="stretch", hide_index=True, key="projects_table")
st.subheader(t("program.ranking"))
rank_df = pd.DataFrame([{t("col.rank"): r.rank, t("col.building"): names.get(r.building_id, r.building_id),
                         t("col.score"): round(r.score, 3), t("col.eui"): r.eui_kwh_m2a,
                         t("col.structure"): r.structure_class, t("col.verdict"): r.best_verdict,
                         t("col.estimated"): r.subsidy_estimate, t("col.message"): "; ".join(r.notes)}
                        for r in ranking])
st.dataframe(rank_df, width="stretch", hide_index=True, key="ranking_table")

st.subheader(t("program.export"))
c1, c2 = st.columns(2)
c1.download_button(t("app.download_csv"), table.to_csv(index=False).encode("utf-8-sig"), "programme.csv",
                   "text/csv", key="programme_csv")
buf = io.BytesIO()
with pd.ExcelWriter(buf, engine="openpyxl") as xl:
    table.to_excel(xl, sheet_name="projects", index=False)
    rank_df.to_excel(xl, sheet_name="ranking", index=False)
c2.download_button(t("app.download_xlsx"), buf.getvalue(), "programme.xlsx",
                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="programme_xlsx")
