"""Subsidies: per building and policy, every condition's status and evidence, estimated and paid amounts, and
what is still missing."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.scope import Can, Unavailable
from insight import retrofit as records

t = ui.tr()
sc = ui.scope(require=Can.RECORDS)
st.title(t("page.subsidies"))
bid = ui.choose_building(sc, t)
if bid is None:
    st.stop()
try:
    assessments = records.subsidies(sc, bid)
except Unavailable as exc:
    st.info(t("app.feature_missing", what=str(exc)))
    st.stop()
if not assessments:
    st.info(t("subsidy.none"))
    st.stop()
m1, m2 = st.columns(2)
m1.metric(t("subsidy.estimated"), t.money(sum(a.estimated or 0 for a in assessments if a.eligible)))
m2.metric(t("subsidy.paid"), t.money(sum(a.paid or 0 for a in assessments)))
for a in assessments:
    verdict = {"eligible": "subsidy.eligible", "not_eligible": "subsidy.not_eligible"}.get(a.verdict,
                                                                                        "subsidy.pending")
    with st.expander(f"{t.pick(a.policy.zh, a.policy.en)} · {t(verdict)}", expanded=True):
        c1, c2 = st.columns(2)
        c1.metric(t("col.estimated"), t.money(a.estimated))
        c2.metric(t("col.paid"), t.money(a.paid))
        st.dataframe(pd.DataFrame([{t("col.condition"): t.pick(c.label.zh, c.label.en),
                                    t("col.expected"): str(c.expected), t("col.actual"): str(c.actual),
                                    t("col.status"): t(f"subsidy.{c.status}"),
                                    t("col.evidence"): c.evidence} for c in a.conditions]),
                     width="stretch", hide_index=True)
        if a.missing:
            st.markdown(f"**{t('subsidy.missing')}**")
            for m in a.missing:
                st.markdown(f"- {m}")
