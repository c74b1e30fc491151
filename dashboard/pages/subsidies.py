"""Subsidies: per building and policy, the verdict and amount first, then what must happen next (who acts,
where the evidence is), then every condition with its requirement, value, status and evidence."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from buildings.subsidy.messages import Todo
from buildings.subsidy.status import Verdict
from dashboard import ui
from dashboard.i18n import Tr
from dashboard.scope import Can, Unavailable
from insight import retrofit as records
from insight.retrofit import ConditionView, PolicyAssessment

VERDICT_BOX = {Verdict.ELIGIBLE: st.success, Verdict.NOT_YET: st.warning, Verdict.NOT_ELIGIBLE: st.error}
PAYMENT_KEYS = ("todo.stage", "todo.document")  # what a staged payment waits for, after eligibility
PAGE_FILE = {"energy": "pages/energy.py", "building": "pages/building.py", "retrofit": "pages/retrofit.py",
             "program": "pages/program.py", "subsidies": "pages/subsidies.py"}


def _todo_text(t: Tr, item: Todo) -> str:
    who = t(f"role.{item.actor}") if item.actor else ""
    return t("subsidy.who_does", who=who, what=t.msg(item.msg)) if who else t.msg(item.msg)


def todo_lines(t: Tr, todo: Sequence[Todo]) -> list[str]:
    """The to-do items as markdown bullets: who acts, what to do; alternatives listed under 'any one of'."""
    entries: list[str | dict[int, list[str]]] = []
    groups: dict[int, dict[int, list[str]]] = {}
    for item in todo:
        g = item.group
        if g is None:
            entries.append(f"- {_todo_text(t, item)}")
            continue
        if g not in groups:
            groups[g] = {}
            entries.append(groups[g])
        groups[g].setdefault(item.branch, []).append(_todo_text(t, item))
    lines: list[str] = []
    for e in entries:
        if isinstance(e, str):
            lines.append(e)
        else:
            lines.append(f"- {t('subsidy.any_of')}")
            lines += [f"    - {t('subsidy.and').join(b)}" for b in e.values()]
    return lines


def evidence_links(t: Tr, todo: Sequence[Todo], building: str, programme: bool) -> None:
    """One link per page that holds evidence for the to-dos (the programme page only for district users)."""
    pages = list(dict.fromkeys(item.page for item in todo if item.page in PAGE_FILE))
    for page in pages:
        if page != "program" or programme:
            st.page_link(PAGE_FILE[page], label=t("subsidy.evidence_link", page=t(f"page.{page}")),
                         query_params={"building": building})


def condition_table(t: Tr, conditions: Sequence[ConditionView]) -> pd.DataFrame:
    return pd.DataFrame([{
        t("col.condition"): t.pick(c.label.zh, c.label.en),
        t("col.expected"): t.requirement(c.field, c.op, c.expected, c.negated),
        t("col.actual"): t.field_value(c.field, c.actual),
        t("col.status"): t(f"subsidy.{c.status}"),
        t("col.evidence"): t.msg(c.evidence_msg) if c.evidence_msg else c.evidence,
    } for c in conditions])


def show_policy(t: Tr, a: PolicyAssessment, building: str, n: int, programme: bool) -> None:
    """One policy as a story: the verdict and amount, what to do next, then the details."""
    with st.container(border=True):
        st.subheader(t.pick(a.policy.zh, a.policy.en))
        verdict = a.verdict
        known = verdict is not Verdict.NOT_YET or a.estimated is not None
        head = t(f"subsidy.headline.{verdict}", amount=t.money(a.estimated)) if known \
            else t("subsidy.headline.no_amount")
        VERDICT_BOX[verdict](head)
        c1, c2 = st.columns(2)
        c1.metric(t("col.estimated"), t.money(a.estimated))
        c2.metric(t("col.paid"), t.money(a.paid))
        payment = [x for x in a.todo if x.msg.key in PAYMENT_KEYS]
        conditions = [x for x in a.todo if x.msg.key not in PAYMENT_KEYS]
        if conditions:
            st.markdown(f"**{t('subsidy.why_not' if verdict == 'not_eligible' else 'subsidy.next')}**")
            st.markdown("\n".join(todo_lines(t, conditions)))
        if payment:
            st.markdown(f"**{t('subsidy.before_payment')}**")
            st.markdown("\n".join(todo_lines(t, payment)))
        evidence_links(t, a.todo, building, programme)
        with st.expander(t("subsidy.details")):
            st.dataframe(condition_table(t, a.conditions), width="stretch", hide_index=True,
                         key=f"conditions_{n}_{t.lang}")


def main() -> None:
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
    order = {Verdict.ELIGIBLE: 0, Verdict.NOT_YET: 1, Verdict.NOT_ELIGIBLE: 2}
    assessments = sorted(assessments, key=lambda a: order[a.verdict])
    m1, m2, m3 = st.columns(3)
    m1.metric(t("subsidy.estimated"), t.money(sum(a.estimated or 0 for a in assessments if a.eligible)))
    m2.metric(t("subsidy.paid"), t.money(sum(a.paid or 0 for a in assessments)))
    m3.metric(t("subsidy.open_policies"), t.num(sum(a.verdict is not Verdict.NOT_ELIGIBLE for a in assessments), 0))
    for n, a in enumerate(assessments):
        show_policy(t, a, bid, n, sc.can(Can.PROGRAMME))


main()
