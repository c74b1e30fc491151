"""The language catalogue covers every key the dashboard uses, in both languages; locale formatting."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from dashboard.i18n import CATALOGUE, Tr

SRC = Path(__file__).resolve().parents[2] / "dashboard"


def used_keys() -> tuple[set[str], set[str]]:
    """Literal keys t("a.b") and the prefixes of computed ones t(f"a.{x}") in the dashboard's source."""
    literal, prefixes = set(), set()
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        literal |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_.\-]+)["']""", text))
        prefixes |= set(re.findall(r"""\bt\(\s*f["']([a-z_]+\.)\{""", text))
    return literal, prefixes


def test_every_used_key_is_in_both_languages() -> None:
    literal, prefixes = used_keys()
    assert len(literal) > 100
    missing = sorted(k for k in literal if k not in CATALOGUE)
    assert not missing, missing
    for p in prefixes:
        assert any(k.startswith(p) for k in CATALOGUE), p
    for key, (zh, en) in CATALOGUE.items():
        assert zh.strip() and en.strip(), key
        assert set(re.findall(r"\{(\w+)[:}]", zh)) == set(re.findall(r"\{(\w+)[:}]", en)), key
        if not key.startswith(("app.language",)):
            assert re.search(r"[\u4e00-\u9fff\uff00-\uffef]", zh) or zh == en or key.startswith("quality."), key


def test_computed_keys_cover_the_values_they_take() -> None:
    from rules.model import Family, Severity
    from telemetry.reading import Quality

    for q in Quality:
        assert f"quality.{q.value}" in CATALOGUE
    for f in Family:
        assert f"family.{f.value}" in CATALOGUE
    for s in Severity:
        assert f"severity.{s.value}" in CATALOGUE
    for state in ("raised", "acknowledged", "cleared"):
        assert f"state.{state}" in CATALOGUE
    for sub in ("total", "hvac", "lighting_sockets", "power", "special"):
        assert f"subitem.{sub}" in CATALOGUE
    for h in ("ok", "degraded", "offline", "unknown"):
        assert f"health.{h}" in CATALOGUE


def test_locale_formatting() -> None:
    zh, en = Tr("zh"), Tr("en")
    day = dt.date(2026, 11, 26)
    assert zh.date(day) == "2026年11月26日" and en.date(day) == "Nov 26, 2026"
    assert zh.num(1234567.891) == "1,234,567.9" and en.num(0.5, 2) == "0.50"
    assert zh.money(1500000) == "¥1,500,000" == en.money(1500000) and zh.money(None) == "—"
    assert zh.pct(0.215) == "21.5%"
    assert zh.datetime(0.0, "Asia/Shanghai") == "1970-01-01 08:00"
    assert zh("login.locked", seconds=30) == "尝试次数过多，请在 30 秒后重试。"
    assert en("login.locked", seconds=30) == "Too many attempts; try again in 30 s."
    assert zh.pick("中文", "English") == "中文" and en.pick("中文", "English") == "English"
    assert en.pick("中文", None) == "中文"  # a record without English falls back, never blank
    assert Tr("fr").lang == "zh"
    assert zh("no.such.key") == "no.such.key"


def test_every_subsidy_field_and_enumeration_has_words() -> None:
    from buildings.ownership import StructureClass
    from buildings.retrofit import DOC_TYPES, MEASURE_CATEGORIES, Stage
    from buildings.site import BuildingUse, OwnerKind
    from buildings.subsidy.defaults import load_defaults
    from buildings.subsidy.messages import TEXT, TODO_FOR
    from buildings.subsidy.policy import FIELDS

    for f in FIELDS:
        assert f"fact.{f}" in CATALOGUE, f
    kinds = {"structure": StructureClass, "use": BuildingUse, "owner_kind": OwnerKind, "stage": Stage}
    for kind, enum in kinds.items():
        for v in enum:
            assert f"{kind}.{v.value}" in CATALOGUE, (kind, v)
    for kind, values in {"measure": MEASURE_CATEGORIES, "doc": DOC_TYPES,
                         "gbt": load_defaults().gbt51161.values, "verdict": ("eligible", "not_yet", "not_eligible")
                         }.items():
        for v in values:
            assert f"{kind}.{v}" in CATALOGUE, (kind, v)
    for key in TEXT:
        assert key in CATALOGUE
    from dashboard.simctl import FAULT_KINDS

    for kind in FAULT_KINDS:
        assert f"fault.{kind}" in CATALOGUE, kind
    for key, _actor, _page in TODO_FOR.values():
        assert key in TEXT


def test_messages_render_in_both_languages_with_locale_formats() -> None:
    from buildings.subsidy.messages import Msg

    m = Msg("ev.policy_valid", {"start": dt.date(2011, 5, 12), "end": dt.date(2017, 12, 31),
                                "as_of": dt.date(2026, 12, 4)})
    assert str(m) == "policy valid 2011-05-12 to 2017-12-31, evaluated on 2026-12-04"
    assert Tr("zh").msg(m) == "政策有效期 2011年5月12日 至 2017年12月31日，评估日 2026年12月4日"
    assert Tr("en").msg(m.as_dict()) == "policy valid May 12, 2011 to Dec 31, 2017, evaluated on Dec 4, 2026"
    todo = {"key": "todo.months_reporting", "args": {"field": "building.monitoring.months_reporting", "need": 12,
                                                     "has": 3.5}}
    assert Tr("zh").msg(todo) == "向监测平台上传至少 12 个月的电表数据（目前 3.5 个月）"
    assert Tr("en").msg(todo) == "upload at least 12 months of meter data to the platform (now 3.5)"
    zh, en = Tr("zh"), Tr("en")
    assert zh.requirement("building.ownership.structure_class", "in", ["single", "concentrated"]) == \
        "属于：单一产权、产权集中"
    assert en.requirement("project.targets.energy_saving_pct", ">=", 0.15) == "≥ 15.0%"
    assert zh.field_value("policy.open", False) == "✗" and zh.field_value("savings.adequate", None) == "—"
    assert zh.area(31500) == "31,500 m²" and en.kwh(1480000.0) == "1,480,000 kWh"
    assert zh.num(float("nan")) == "—" and en.money(None) == "—" and zh.term("structure", "fragmented") == "产权分散"
    rank = {"key": "rank.no_gbt", "args": {"use": "hotel"}}
    assert zh.msg(rank) == "GB/T 51161 没有“酒店”用途的指标"
