"""Portfolio: the user's buildings on a map and in a table (EUI, active alarms, retrofit stage, subsidy)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import energy, ui
from dashboard import map as district_map
from dashboard.scope import Unavailable
from insight import retrofit as records

t = ui.tr()
sc = ui.scope()
st.title(t("portfolio.title"))
files = sc.buildings()
if not files:
    st.info(t("app.no_buildings"))
    st.stop()

now = ui.now_rounded()
rows = []
problems: list[str] = []
alarms_by_building: dict[str, dict[str, int]] = {}
try:
    for a in sc.alarms(state=["raised", "acknowledged"], limit=100_000):
        counts = alarms_by_building.setdefault(a.building, {})
        counts[a.severity] = counts.get(a.severity, 0) + 1
except Unavailable as exc:
    problems.append(str(exc))
status: dict[str, records.BuildingRecordStatus] = {}
try:
    status = records.records_status(sc)
except Unavailable as exc:
    problems.append(str(exc))
store_problem = None
euis: dict[str, tuple[float | None, int]] = {}
try:
    euis = energy.portfolio_eui(sc, now)
except Unavailable as exc:
    store_problem = str(exc)
for f in files:
    b = f.building
    eui_value = euis.get(b.id, (None, 0))[0]
    counts = alarms_by_building.get(b.id, {})
    st_row = status.get(b.id)
    rows.append({
        "id": b.id,
        t("col.building"): t.pick(b.name.zh, b.name.en),
        t("col.year"): b.year_built,
        t("col.area"): b.gross_floor_area_m2,
        t("col.owners"): sum(o.count for o in b.owners),
        t("col.eui"): None if eui_value is None else round(eui_value, 1),
        t("col.alarms_critical"): counts.get("critical", 0),
        t("col.alarms_fault"): counts.get("fault", 0),
        t("col.alarms_warning"): counts.get("warning", 0) + counts.get("advisory", 0),
        t("col.stage"): t.pick(st_row.stage.zh, st_row.stage.en) if st_row else "-",
        t("col.subsidy"): t.pick(st_row.subsidy.zh, st_row.subsidy.en) if st_row else "-",
        "lat": b.lat, "lon": b.lon,
    })
df = pd.DataFrame(rows)
if store_problem:
    st.warning(t("app.store_unavailable", error=store_problem))
for p in problems:
    st.info(t("app.feature_missing", what=p))

c1, c2, c3, c4 = st.columns(4)
c1.metric(t("portfolio.buildings"), t.num(len(files), 0))
c2.metric(t("portfolio.floor_area"), t.num(float(df[t("col.area")].sum()), 0))
active = int(df[[t("col.alarms_critical"), t("col.alarms_fault"), t("col.alarms_warning")]].to_numpy().sum())
c3.metric(t("portfolio.active_alarms"), t.num(active, 0))
known = df[t("col.eui")].dropna()
c4.metric(t("portfolio.median_eui"), t.num(float(known.median()) if len(known) else None))

st.subheader(t("portfolio.map"))
district_map.show(df, t, ui.settings().map_file)

st.subheader(t("portfolio.table"))
table = df.drop(columns=["lat", "lon"]).rename(columns={"id": t("col.building_id")})
st.dataframe(table, width="stretch", hide_index=True, key="portfolio_table",
             column_config={t("col.area"): st.column_config.NumberColumn(format="localized"),
                            t("col.eui"): st.column_config.NumberColumn(format="%.1f")})
st.caption(t("portfolio.eui_note"))
st.download_button(t("app.download_csv"), table.to_csv(index=False).encode("utf-8-sig"), "portfolio.csv",
                   "text/csv", key="portfolio_csv")
for f in files:
    st.page_link("pages/building.py", label=f"{t('portfolio.open')}: {t.pick(f.building.name.zh, f.building.name.en)}",
                 query_params={"building": f.building.id})
