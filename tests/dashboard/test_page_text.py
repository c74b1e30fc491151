"""What a person reads: every dashboard page, for each role (owner, district, technician) and both languages,
rendered with Streamlit's AppTest. A Chinese page may not show Python values (True, False, None, nan), a
snake_case identifier or an English sentence of the catalogue; an English page may not show Chinese text.

The visible text is collected from the elements' own fields (headings, markdown, labels, metric values, widget
options), every dataframe's header and cells, and the text of every chart (trace names, axis titles, tick and
hover text), not from element ids or keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from dashboard.app import PAGES
from dashboard.auth import Role
from dashboard.i18n import CATALOGUE
from tests.dashboard.conftest import sign_in

USERS = {Role.OWNER: "alice", Role.DISTRICT: "dora", Role.TECHNICIAN: "tom"}
VISIBLE_FIELDS = ("body", "label", "options", "placeholder", "default_value")
CHART_TEXT_KEYS = {"name", "text", "ticktext", "hovertext", "title", "legendgrouptitle", "label"}
PYTHON_VALUES = re.compile(r"\b(True|False|None|nan|NaN)\b")
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
ENGLISH_RUN = re.compile(r"\b[a-z]+(?:[ ,;]+[a-z]+){5,}\b")  # six lowercase English words in a row
CJK = re.compile(r"[\u3400-\u9fff\uff01-\uff5e\u3000-\u303f]")
# Text that is the same in both languages on purpose: the language switch names both languages.
BOTH_LANGUAGES = ("语言 / Language", "中文")


def _proto_text(msg) -> Iterator[str]:  # noqa: ANN001
    """The visible string fields of an element's protobuf message, nested messages included."""
    for fd, value in msg.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            for sub in (value if fd.is_repeated else [value]):
                yield from _proto_text(sub)
        elif fd.name in VISIBLE_FIELDS and fd.type == fd.TYPE_STRING:
            yield from (value if fd.is_repeated else [value])


def _chart_text(node: object) -> Iterator[str]:
    """The strings of a plotly figure that end up on screen."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in CHART_TEXT_KEYS:
                if isinstance(v, str):
                    yield v
                elif isinstance(v, dict) and isinstance(v.get("text"), str):
                    yield v["text"]
                elif isinstance(v, list):
                    yield from (str(x) for x in v if isinstance(x, str))
            if isinstance(v, dict | list):
                yield from _chart_text(v)
    elif isinstance(node, list):
        for x in node:
            yield from _chart_text(x)


def visible_text(at) -> list[str]:  # noqa: ANN001
    """The pieces of text the page shows, one string per element field, dataframe cell or chart label."""
    out: list[str] = []

    def walk(node) -> None:  # noqa: ANN001
        proto = getattr(node, "proto", None)
        if proto is not None and getattr(node, "type", "") not in ("arrow_data_frame", "plotly_chart"):
            out.extend(_proto_text(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    for df in at.dataframe:
        out.extend(str(c) for c in df.value.columns)
        out.extend(str(v) for v in df.value.astype(str).to_numpy().ravel())
    for chart in at.get("plotly_chart"):
        out.extend(_chart_text(json.loads(chart.proto.spec)))
    return [s for s in out if s and s not in BOTH_LANGUAGES]


def _english_sentences() -> list[str]:
    """The longest literal run of each English catalogue text that is a sentence (3+ words) and differs
    from its Chinese text: seeing one on a Chinese page means a string missed the catalogue."""
    out = set()
    for zh, en in CATALOGUE.values():
        if zh == en:
            continue
        parts = [p.strip(" .,:;()") for p in re.split(r"\{[^}]*\}|\*\*", en)]
        best = max(parts, key=len)
        if len(best.split()) >= 3 and not CJK.search(best):
            out.add(best)
    return sorted(out)


ENGLISH = _english_sentences()


@pytest.fixture(scope="module")
def one_language_records(dash_data) -> tuple[str, ...]:  # noqa: ANN001
    """Record text that exists in one language only, so a page shows it as it is: project, milestone, measure
    and document names, a policy's name where it has one language, where a savings result or an EUI came from (the
    records database), and the site files' addresses (none of these has a second-language field)."""
    from sqlalchemy import select

    from buildings.records.base import make_engine, session_factory
    from buildings.records.models import (
        Building,
        Document,
        Measure,
        Milestone,
        RetrofitProject,
        SavingsResult,
        SubsidyPolicyRecord,
    )
    from buildings.site import load_site

    engine = make_engine(dash_data.records_url)
    with session_factory(engine)() as s:
        texts = [*s.scalars(select(RetrofitProject.name)), *s.scalars(select(Milestone.name)),
                 *s.scalars(select(Document.title)), *s.scalars(select(Measure.description)),
                 *s.scalars(select(SavingsResult.source)),
                 *s.scalars(select(Building.eui_source)),
                 *(p.name for p in s.scalars(select(SubsidyPolicyRecord)) if not CJK.search(p.name))]
    engine.dispose()
    texts += [b.address for b in load_site(str(dash_data.site)).buildings]
    return tuple(sorted({x for x in texts if x}, key=len, reverse=True))


def problems(texts: list[str], lang: str, records: tuple[str, ...] = ()) -> list[str]:
    found = []
    for s in texts:
        for r in records:
            s = s.replace(r, "")
        if PYTHON_VALUES.search(s) or SNAKE.search(s):
            found.append(s)
        elif lang == "zh" and (any(e in s for e in ENGLISH) or ENGLISH_RUN.search(s)):
            found.append(s)
        elif lang == "en" and CJK.search(s):
            found.append(s)
    return sorted(set(found))


def page_cases() -> list[tuple[Role, str]]:
    return [(role, path) for path, _title, _icon, roles in PAGES for role in Role if role in roles]


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(("role", "page"), page_cases(), ids=lambda x: str(x).split("/")[-1])
def test_page_shows_words_not_codes(dash_env, one_language_records, role: Role, page: str,  # noqa: ANN001
                                    lang: str) -> None:
    at = sign_in(USERS[role], query={"building": "jiefangbei-tower" if role != Role.DISTRICT else
                                     "chaotianmen-harbour"})
    at.session_state["lang"] = lang  # the sidebar switch's session key (see test_language_switch_changes_labels)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    texts = visible_text(at)
    assert len(texts) > 1, texts
    bad = problems(texts, lang, one_language_records)
    assert not bad, f"{page} as {role} in {lang}: {bad[:10]}"
