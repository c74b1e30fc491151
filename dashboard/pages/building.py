"""Building: equipment tree with live values, quality and device health; trends; sub-item energy breakdown."""

from __future__ import annotations

import time

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import energy, ui
from dashboard.i18n import EMPTY
from dashboard.scope import Unavailable
from insight import health
from telemetry.store import Agg

t = ui.tr()
sc = ui.scope()
st.title(t("page.building"))
bid = ui.choose_building(sc, t)
if bid is None:
    st.stop()
bf = sc.building(bid)
b = bf.building
tz = b.timezone
refs = sc.points(bid)
st.caption(f"{b.address} · {t('col.year')} {b.year_built} · {t('building.area')} {t.area(b.gross_floor_area_m2)}")

latest: dict = {}
store_problem = None
try:
    latest = sc.latest(bid)
except Unavailable as exc:
    store_problem = str(exc)
    st.warning(t("app.store_unavailable", error=store_problem))
now = time.time()
dev_health = health.device_health(refs, latest, now, ui.runtime().settings.data_dir)

c1, c2, c3 = st.columns(3)
c1.metric(t("building.points_n"), t.num(len(refs), 0))
c2.metric(t("building.devices_ok"), f"{sum(v == 'ok' for v in dev_health.values())} / {len(dev_health)}")
last_ts = max((r.ts for r in latest.values()), default=None)
c3.metric(t("building.last_update"), t.datetime(last_ts, tz))

rows = []
for r in refs:
    rd = latest.get(r.key)
    value = rd.value if rd is not None else None
    rows.append({
        t("col.equipment"): r.equipment.id, "id": r.point.id, t("col.point"): t.pick(r.point.name_zh, r.point.name),
        t("col.value"): t.reading(value, r.point.unit), t("col.unit"): t.unit(r.point.unit),
        t("col.quality"): t(f"quality.{rd.quality.value}") if rd is not None else t("quality.none"),
        t("col.time"): t.datetime(rd.ts, tz) if rd is not None else EMPTY, "Brick": r.point.brick,
        t("col.device"): r.device.id, t("col.health"): t(f"health.{dev_health.get(f'{bid}/{r.device.id}', 'unknown')}"),
    })
live = pd.DataFrame(rows)

st.subheader(t("building.tree"))
# One expander per equipment with its points as text (cheap to send), one table for sorting and download.
for eq in bf.equipment:
    part = live[live[t("col.equipment")] == eq.id]
    bad = int((part[t("col.quality")] != t("quality.good")).sum())
    flag = f" · ⚠ {bad}" if bad else ""
    with st.expander(f"{t.pick(eq.name_zh, eq.name)} · {eq.id} ({eq.brick_class}){flag}"):
        st.markdown("\n".join(f"- `{r['id']}` {r[t('col.point')]}: **{r[t('col.value')]}** {r[t('col.unit')]} · "
                               f"{r[t('col.quality')]} · {r[t('col.time')]}" for r in part.to_dict("records")))
st.subheader(t("building.live"))
st.dataframe(live, width="stretch", hide_index=True, key="live_table")

st.subheader(t("building.trends"))
numeric = [r for r in refs if r.point.unit != "bool" and not (r.point.modbus and r.point.modbus.type == "string")]
labels = {r.key: f"{r.equipment.id} · {t.pick(r.point.name_zh, r.point.name)} [{t.unit(r.point.unit)}]"
          for r in numeric}
default = [r.key for r in numeric if r.point.brick in ("Zone_Air_Temperature_Sensor", "Electric_Power_Sensor",
                                                       "Active_Power_Sensor")][:2] or [r.key for r in numeric[:1]]
chosen = st.multiselect(t("building.points"), list(labels), default=default, format_func=labels.get,
                        key=f"trend_points_{bid}_{t.lang}", max_selections=6)
c1, c2, c3 = st.columns(3)
ranges = {"1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "365d": 365 * 86400}
rng = c1.selectbox(t("building.range"), list(ranges), index=1, format_func=lambda k: t(f"range.{k}"),
                   key=f"trend_range_{t.lang}")
windows = {"15min": 900, "1h": 3600, "1d": 86400}
auto = {"1d": "15min", "7d": "1h", "30d": "1h", "365d": "1d"}[rng]
win = c2.selectbox(t("building.window"), list(windows), index=list(windows).index(auto),
                   format_func=lambda k: t(f"window.{k}"), key=f"trend_window_{rng}_{t.lang}")
agg = c3.selectbox(t("building.agg"), ["mean", "min", "max"], format_func=lambda k: t(f"agg.{k}"),
                   key=f"trend_agg_{t.lang}")
if chosen and store_problem is None:
    end = ui.now_rounded()
    start = end - ranges[rng]
    if ranges[rng] / windows[win] > 3000:  # keep the chart and the query small: a year at 15 min is 35,000
        win = "1d" if rng == "365d" else "1h"
    with ui.guard(t):
        data = sc.aggregate(chosen, start, end, windows[win], Agg(agg), tz)
        fig = go.Figure()
        frames = []
        for key in chosen:
            pts = data.get(key, [])
            if not pts:
                continue
            x = pd.to_datetime([p[0] for p in pts], unit="s", utc=True).tz_convert(tz)
            y = [p[1] for p in pts]
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=labels[key]))
            frames.append(pd.DataFrame({"point": key, "time": x, "value": y}))
        if frames:
            fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                              legend={"orientation": "h"}, xaxis_title=t("col.time"))
            st.plotly_chart(fig, width="stretch", key="trend_chart")
            csv = pd.concat(frames).to_csv(index=False).encode("utf-8-sig")
            st.download_button(t("app.download_csv"), csv, f"{bid}-trends.csv", "text/csv", key="trend_csv")
        else:
            st.info(t("app.no_data"))

st.subheader(t("building.subitems"))
if store_problem is None:
    with ui.guard(t):
        end = ui.now_rounded()
        totals = energy.subitem_totals(sc, bid, end - 30 * 86400, end)
        if totals and sum(totals.values()) > 0:
            df = pd.DataFrame({"subitem": [t(f"subitem.{k}") for k in totals], "kwh": list(totals.values())})
            fig = px.pie(df, names="subitem", values="kwh", hole=0.45, height=320)
            fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10})
            st.plotly_chart(fig, width="stretch", key="subitem_pie")
            st.caption(t("range.30d") + " · " + " · ".join(f"{t(f'subitem.{k}')} {t.num(v, 0)} kWh"
                                                          for k, v in totals.items()))
        else:
            st.info(t("energy.no_meters") if not totals else t("app.no_data"))
