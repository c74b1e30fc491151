"""Portfolio: the user's buildings on a map and in a table (EUI, active alarms, retrofit stage, subsidy)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import map as district_map
from dashboard import ui
from dashboard.i18n import EMPTY, Tr
from insight import portfolio
from insight import retrofit as records
from rules.model import Severity


def subsidy_state(t: Tr, row: records.BuildingRecordStatus | None) -> str:
    """A building's subsidy applications in words: their states, and what was paid."""
    if row is None or not row.applications:
        return EMPTY
    text = t.sep.join(t.term("app_status", s) for s in row.applications)
    return t("portfolio.subsidy_paid", states=text, amount=t.money(row.paid)) if row.paid else text


t = ui.tr()
sc = ui.scope()
st.title(t("portfolio.title"))
files = sc.buildings()
if not files:
    st.info(t("app.no_buildings"))
    st.stop()

view = portfolio.portfolio(sc, ui.now_rounded())
rows = []
for r in view.rows:
    rows.append({
        "id": r.building_id,
        t("col.building"): t.pick(r.name.zh, r.name.en),
        t("col.year"): r.year_built,
        t("col.area"): r.area_m2,
        t("col.owners"): r.owners,
        t("col.eui"): None if r.eui.kwh_per_m2_year is None else round(r.eui.kwh_per_m2_year, 1),
        t("col.alarms_critical"): r.alarms.get(Severity.CRITICAL, 0),
        t("col.alarms_fault"): r.alarms.get(Severity.FAULT, 0),
        t("col.alarms_warning"): r.alarms.get(Severity.WARNING, 0) + r.alarms.get(Severity.ADVISORY, 0),
        t("col.stage"): t.pick(r.status.stage.zh, r.status.stage.en) if r.status else EMPTY,
        t("col.subsidy"): subsidy_state(t, r.status),
        "lat": r.lat, "lon": r.lon,
    })
df = pd.DataFrame(rows)
if view.store_problem:
    st.warning(t("app.store_unavailable", error=view.store_problem))
for p in view.problems:
    st.info(t("app.feature_missing", what=p))

c1, c2, c3, c4 = st.columns(4)
c1.metric(t("portfolio.buildings"), t.num(len(files), 0))
c2.metric(t("portfolio.floor_area"), t.num(float(df[t("col.area")].sum()), 0))
c3.metric(t("portfolio.active_alarms"), t.num(view.active_alarms, 0))
known = df[t("col.eui")].dropna()
c4.metric(t("portfolio.median_eui"), t.num(float(known.median()) if len(known) else None))

st.subheader(t("portfolio.map"))
district_map.show(df, t, ui.settings().map_file)

st.subheader(t("portfolio.table"))
table = df.drop(columns=["lat", "lon"]).rename(columns={"id": t("col.building_id")})
shown = table.copy()  # as a person reads it: separators, one decimal for the EUI, — for no data
shown[t("col.area")] = [t.num(v, 0) for v in shown[t("col.area")]]
shown[t("col.eui")] = [t.num(v, 1) for v in shown[t("col.eui")]]
st.dataframe(shown, width="stretch", hide_index=True, key="portfolio_table")
st.caption(t("portfolio.eui_note"))
st.download_button(t("app.download_csv"), table.to_csv(index=False).encode("utf-8-sig"), "portfolio.csv",
                   "text/csv", key="portfolio_csv")
for f in files:
    st.page_link("pages/building.py", label=f"{t('portfolio.open')}: {t.pick(f.building.name.zh, f.building.name.en)}",
                 query_params={"building": f.building.id})
