"""District programme (district users): projects by stage, budget committed and paid, savings achieved, the
priority ranking of buildings not yet retrofitted (verdict and amount first, then the reasons in words), and
CSV / Excel export."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import ui
from dashboard.i18n import EMPTY, Tr
from dashboard.scope import Can, Unavailable
from insight import retrofit as records
from insight.retrofit import ProjectView, RankingRow


def project_rows(t: Tr, projects: Sequence[ProjectView], names: dict[str, str]) -> list[dict[str, Any]]:
    """The project table with raw numbers (for the export and the chart)."""
    return [{t("col.building"): names.get(p.building, p.building), t("col.project"): t.pick(p.name.zh, p.name.en),
             t("col.stage"): t.pick(p.stage.zh, p.stage.en), t("col.budget"): p.budget, t("col.paid"): p.paid,
             t("col.savings"): p.savings_kwh, t("col.progress"): p.progress} for p in projects]


def shown(t: Tr, table: pd.DataFrame) -> pd.DataFrame:
    """The project table as a person reads it: ¥ with separators, kWh, percent, — for nothing."""
    out = table.copy()
    for col, f in ((t("col.budget"), t.money), (t("col.paid"), t.money), (t("col.savings"), t.kwh),
                   (t("col.progress"), lambda v: t.pct(v, 0))):
        if col in out:
            out[col] = [f(v) for v in out[col]]
    return out


def reasons(t: Tr, r: RankingRow) -> str:
    return ("；" if t.lang == "zh" else "; ").join(t.msg(m) for m in r.reasons) or EMPTY


def ranking_rows(t: Tr, ranking: Sequence[RankingRow], names: dict[str, str], raw: bool = False
                 ) -> list[dict[str, Any]]:
    """The priority table; ``raw`` keeps numbers as numbers (export), else formatted for reading."""
    return [{t("col.rank"): r.rank, t("col.building"): names.get(r.building_id, r.building_id),
             t("col.verdict"): t.term("verdict", r.best_verdict),
             t("col.estimated"): r.subsidy_estimate if raw else t.money(r.subsidy_estimate),
             t("col.score"): round(r.score, 3) if raw else t.num(r.score, 2),
             t("col.eui"): r.eui_kwh_m2a if raw else t.num(r.eui_kwh_m2a, 0),
             t("col.structure"): t.term("structure", r.structure_class),
             t("col.reasons"): reasons(t, r), t("col.eui_source"): r.eui_evidence or EMPTY}
            for r in ranking]


def ranking_story(t: Tr, ranking: Sequence[RankingRow], names: dict[str, str]) -> None:
    """Per building: rank, best verdict and amount first, then why it ranks where it does."""
    lines = []
    for r in ranking:
        amount = t.money(r.subsidy_estimate) if r.subsidy_estimate else t("program.no_amount")
        lines.append(t("program.story", rank=r.rank, building=names.get(r.building_id, r.building_id),
                       verdict=t.term("verdict", r.best_verdict), amount=amount, reasons=reasons(t, r)))
    st.markdown("\n".join(f"- {line}" for line in lines))


def export(t: Tr, table: pd.DataFrame, rank_df: pd.DataFrame) -> None:
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


def main() -> None:
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
    m4.metric(t("program.savings"), t.kwh(sum(p.savings_kwh or 0 for p in projects)))
    table = pd.DataFrame(project_rows(t, projects, names))
    if not table.empty:
        by_stage = table.groupby(t("col.stage")).size().reset_index(name=t("program.projects"))
        st.subheader(t("program.projects_by_stage"))
        fig = px.bar(by_stage, x=t("col.stage"), y=t("program.projects"), height=300)
        fig.update_yaxes(dtick=1)  # whole projects
        st.plotly_chart(fig, width="stretch", key="by_stage")
        st.dataframe(shown(t, table), width="stretch", hide_index=True, key="projects_table")
    st.subheader(t("program.ranking"))
    ranking_story(t, ranking, names)
    st.dataframe(pd.DataFrame(ranking_rows(t, ranking, names)), width="stretch", hide_index=True,
                 key="ranking_table")
    export(t, table, pd.DataFrame(ranking_rows(t, ranking, names, raw=True)))


main()
