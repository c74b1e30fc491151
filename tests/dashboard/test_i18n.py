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
        assert set(re.findall(r"\{(\w+)\}", zh)) == set(re.findall(r"\{(\w+)\}", en)), key
        if not key.startswith(("app.language",)):
            assert re.search(r"[\u4e00-\u9fff]", zh) or zh == en or key.startswith("quality."), key


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
    assert zh.money(1500000) == "¥1,500,000" and "1,500,000" in en.money(1500000)
    assert zh.pct(0.215) == "21.5%"
    assert zh.datetime(0.0, "Asia/Shanghai") == "1970-01-01 08:00"
    assert zh("login.locked", seconds=30) == "尝试次数过多，请在 30 秒后重试。"
    assert en("login.locked", seconds=30) == "Too many attempts; try again in 30 s."
    assert zh.pick("中文", "English") == "中文" and en.pick("中文", "English") == "English"
    assert en.pick("中文", None) == "中文"  # a record without English falls back, never blank
    assert Tr("fr").lang == "zh"
    assert zh("no.such.key") == "no.such.key"
