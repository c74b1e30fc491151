"""Energy: daily and monthly energy, hour-of-week heatmap, load profile, period comparison, intensity against
GB/T 51161, and measured savings against the baseline once the retrofit is done."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import energy, ui
from dashboard.i18n import EMPTY
from dashboard.scope import Unavailable
from insight import retrofit as records

if TYPE_CHECKING:  # pragma: no cover
    from insight.savings import MeasuredSavings

DAY = 86400


@st.cache_data(ttl=900, show_spinner=False, max_entries=200)
def _savings(store_id: str, building_id: str, now: float, _sc: object) -> MeasuredSavings:
    """The baseline fit is the slow part of the page: once per store, building and 5-minute clock."""
    return energy.measured_savings(_sc, building_id, now)  # type: ignore[arg-type]


t = ui.tr()
sc = ui.scope()
st.title(t("page.energy"))
bid = ui.choose_building(sc, t)
if bid is None:
    st.stop()
b = sc.building(bid).building
if not energy.has_meters(sc, bid):
    st.info(t("energy.no_meters"))
    st.stop()
now = ui.now_rounded()
try:
    daily = energy.energy(sc, bid, now - 365 * DAY, now, DAY)  # the same query as the EUI below: one cache hit
    how = energy.hour_of_week(sc, bid, now - 28 * DAY, now)
except Unavailable as exc:
    st.warning(t("app.store_unavailable", error=str(exc)))
    st.stop()
if daily.empty:
    st.info(t("app.no_data"))
    st.stop()

last_year = daily
eui_value, days = energy.eui(sc, bid, now)
constraint, leading, gb_class = energy.gbt51161_limits(b.use.value)
today = dt.datetime.fromtimestamp(now, dt.UTC).astimezone(daily.index.tz).date()
this7, prev7 = energy.compare_periods(daily, 7, today)
c1, c2, c3, c4 = st.columns(4)
c1.metric(t("energy.total_year"), t.kwh(float(last_year.sum())))
c2.metric(t("energy.eui_label"), f"{t.num(eui_value)} kWh/m²·a")
c3.metric(f"{t('energy.this_period')} ({t('fmt.days', n=7)})", t.kwh(this7),
          delta=t.pct((this7 - prev7) / prev7) if prev7 else None, delta_color="inverse")
c4.metric(t("energy.days"), t.num(days, 0))

tab_d, tab_m, tab_h, tab_p, tab_c, tab_i, tab_s = st.tabs([
    t("energy.daily"), t("energy.monthly"), t("energy.heatmap"), t("energy.profile"), t("energy.compare"),
    t("energy.intensity"), t("energy.savings")])
with tab_d:
    fig = px.bar(x=daily.index, y=daily.values, labels={"x": t("col.time"), "y": t("col.energy_kwh")}, height=340)
    st.plotly_chart(fig, width="stretch", key="daily_chart")
    out = pd.DataFrame({"date": daily.index.strftime("%Y-%m-%d"), "kwh": daily.values.round(2)})
    st.download_button(t("app.download_csv"), out.to_csv(index=False).encode("utf-8-sig"), f"{bid}-daily.csv",
                       "text/csv", key="daily_csv")
with tab_m:
    m = energy.monthly(daily)
    fig = px.bar(x=m.index, y=m.values, labels={"x": t("col.period"), "y": t("col.energy_kwh")}, height=340)
    st.plotly_chart(fig, width="stretch", key="monthly_chart")
with tab_h:
    if how.empty:
        st.info(t("app.no_data"))
    else:
        fig = go.Figure(go.Heatmap(z=how.values, x=list(range(24)), y=t.weekdays(), colorscale="YlOrRd",
                                   colorbar={"title": "kW"}))
        fig.update_layout(height=320, xaxis_title=t("energy.hour"), yaxis_title=t("energy.weekday"),
                          yaxis={"autorange": "reversed"}, margin={"l": 10, "r": 10, "t": 10, "b": 10})
        st.plotly_chart(fig, width="stretch", key="heatmap")
with tab_p:
    prof = energy.load_profile(how)
    if prof.empty:
        st.info(t("app.no_data"))
    else:
        fig = go.Figure()
        for col in prof.columns:
            fig.add_trace(go.Scatter(x=prof.index, y=prof[col], mode="lines+markers",
                                     name=t("energy.weekend") if col else t("energy.workday")))
        fig.update_layout(height=320, xaxis_title=t("energy.hour"), yaxis_title=t("energy.kw"))
        st.plotly_chart(fig, width="stretch", key="profile")
with tab_c:
    span = st.selectbox(t("col.period"), [7, 30, 90], format_func=lambda d: t("fmt.days", n=d),
                        key=f"compare_span_{t.lang}")
    this, prev = energy.compare_periods(daily, span, today)
    df = pd.DataFrame({t("col.period"): [t("energy.prev_period"), t("energy.this_period")], "kWh": [prev, this]})
    st.plotly_chart(px.bar(df, x=t("col.period"), y="kWh", height=300), width="stretch", key="compare_chart")
    st.metric(t("energy.change"), t.pct((this - prev) / prev) if prev else EMPTY)
with tab_i:
    verdict = (t("energy.over_constraint") if eui_value and eui_value > constraint else
               t("energy.under_leading") if eui_value and eui_value <= leading else t("energy.between"))
    fig = go.Figure(go.Bar(x=[t("energy.eui_label")], y=[eui_value or 0], name=t("energy.eui_label")))
    fig.add_hline(y=constraint, line_dash="dash", line_color="red",
                  annotation_text=f"{t('energy.constraint')} {constraint:.0f}")
    fig.add_hline(y=leading, line_dash="dot", line_color="green",
                  annotation_text=f"{t('energy.leading')} {leading:.0f}")
    fig.update_layout(height=320, yaxis_title="kWh/m²·a")
    st.plotly_chart(fig, width="stretch", key="intensity_chart")
    st.write(f"{t('energy.eui_label')}: **{t.num(eui_value)}** kWh/m²·a · {verdict} "
             f"(GB/T 51161-2016, {t.term('gbt', gb_class)})")
with tab_s:
    if b.retrofit_date is None or b.retrofit_date > today:
        st.info(t("energy.not_retrofitted"))
    else:
        from buildings.savings import BaselineError

        try:
            with ui.guard(t):
                res = _savings(sc.store_id, bid, now, sc)
                st.metric(t("col.savings"), t.kwh(res.avoided_kwh), delta=t.pct(res.savings_fraction))
                fig = go.Figure([go.Scatter(x=res.dates, y=res.predicted, name=t("energy.baseline")),
                                 go.Scatter(x=res.dates, y=res.actual, name=t("energy.actual"))])
                fig.update_layout(height=320, yaxis_title=t("col.energy_kwh"))
                st.plotly_chart(fig, width="stretch", key="savings_chart")
                rp = res.result.reporting_period
                st.caption(f"IPMVP option C · CV(RMSE) {t.pct(res.result.baseline.stats.cv_rmse)} · "
                           f"{rp[0]}..{rp[1]} · {res.evidence.temperature_point} · {res.result.verdict}")
        except BaselineError as exc:
            st.info(t("energy.no_baseline", reason=t.msg(exc.msg) if exc.msg else exc.reason))
            with ui.guard(t):
                rec = records.recorded_savings(sc, bid)
                if rec is not None:
                    st.metric(t("energy.recorded_savings"), f"{t.num(rec.avoided_kwh, 0)} kWh",
                              delta=t.pct(rec.fraction))
                    st.caption(f"IPMVP option C · {rec.model} · CV(RMSE) {t.pct(rec.cv_rmse)} · "
                               f"{t('energy.baseline')} {rec.baseline[0]}..{rec.baseline[1]} · "
                               f"{t('energy.actual')} {rec.reporting[0]}..{rec.reporting[1]} · {rec.source}")
