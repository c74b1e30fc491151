"""Every dashboard page in a real Chromium, for each role and both languages: one `retrofit dashboard`, one
browser, one signed-in session per user that walks its pages through the sidebar, Chinese then English.

Each page is saved as screenshots/pages/{role}-{page}-{lang}.png (git-ignored; kept as a CI artefact) and its
rendered text (what the browser lays out, including chart labels) gets the same check as the AppTest
page-text test: no Python values or snake_case on any page, no catalogue English on a Chinese page, no
Chinese on an English one. The subsidy and programme shots are the ones in docs/img (see docs/dashboard.md:
copy screenshots/pages/docs-*.png there after a change).
"""

from __future__ import annotations

import time
from pathlib import Path

from dashboard.app import PAGES
from dashboard.auth import Role
from dashboard.i18n import Tr
from tests.dashboard.conftest import PASSWORD
from tests.dashboard.test_browser import CHROMIUM_ARGS, _settle
from tests.dashboard.test_browser import dashboard_url as dashboard_url  # noqa: F401 - the fixture
from tests.dashboard.test_page_text import BOTH_LANGUAGES, USERS, problems
from tests.dashboard.test_page_text import one_language_records as one_language_records  # noqa: F401

SHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "pages"
# The pages shown in docs/dashboard.md: (role, page) -> file name stem in docs/img
# (the portfolio's are taken by tests/dashboard/test_map.py::test_portfolio_screenshots_for_the_docs)
DOCS = {(Role.DISTRICT, "subsidies"): "dashboard-subsidies", (Role.DISTRICT, "program"): "dashboard-program"}


def _sign_in(page, url: str, username: str) -> None:  # noqa: ANN001
    page.goto(url)
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("[data-testid='stSidebarNav']")
    _settle(page)


def _stable(page, timeout_s: float = 60.0) -> None:  # noqa: ANN001
    """Wait until Streamlit finished the run and the page stopped growing (it renders element by element)."""
    _settle(page)
    deadline, last, same = time.monotonic() + timeout_s, -1, 0
    while same < 2 and time.monotonic() < deadline:
        n = page.evaluate("document.querySelectorAll('[data-testid]').length + "
                          "document.querySelectorAll('.js-plotly-plot .main-svg').length")
        same, last = (same + 1, last) if n == last else (0, n)
        page.wait_for_timeout(300)
    _settle(page)


def _text(page) -> list[str]:  # noqa: ANN001
    """The lines the app shows, without icon ligature names (Material Symbols glyphs are spelled as words)."""
    raw = page.evaluate("""() => {
        const app = document.querySelector("[data-testid='stApp']").cloneNode(true);
        app.querySelectorAll("[data-testid='stIconMaterial'], .material-symbols-rounded").forEach(e => e.remove());
        document.body.appendChild(app); const text = app.innerText; app.remove(); return text;
    }""")
    return [x.strip() for x in raw.splitlines() if x.strip()]


def _shot(page, path: Path) -> None:  # noqa: ANN001
    """A screenshot down to the end of the page's content (the viewport is tall so nothing scrolls)."""
    bottom = page.evaluate("Math.max(...[...document.querySelectorAll(\"[data-testid='stMainBlockContainer'] > div\")]"
                           ".map(e => e.getBoundingClientRect().bottom), 600)")
    size = page.viewport_size or {"width": 1400, "height": 2400}
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": size["width"],
                                          "height": min(size["height"], bottom + 48)})


def _open(page, title: str) -> None:  # noqa: ANN001
    """Open a page through the sidebar (a new URL would be a new, signed-out session) and wait for it."""
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True).click()
    page.wait_for_function("t => [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === t)",
                           arg=title)
    _stable(page)


def _walk(page, role: Role, lang: str, records: tuple[str, ...]) -> dict[str, list[str]]:  # noqa: ANN001
    """Every page of the role in the current language: a screenshot each, and what its text got wrong."""
    t = Tr(lang)
    bad: dict[str, list[str]] = {}
    for path, title, _icon, roles in PAGES:
        if role not in roles:
            continue
        name = path.split("/")[1].removesuffix(".py")
        _open(page, t(title))
        _shot(page, SHOTS / f"{role.value}-{name}-{lang}.png")
        if (role, name) in DOCS:
            if name == "subsidies":  # the docs show one policy's condition table too
                page.locator("[data-testid='stExpander'] summary").first.click()
                _stable(page)
            _shot(page, SHOTS / f"docs-{DOCS[role, name]}-{lang}.png")
        found = problems([x for x in _text(page) if x not in BOTH_LANGUAGES], lang, records)
        if found:
            bad[f"{role.value}/{name}/{lang}"] = found[:8]
    return bad


def test_every_page_in_chromium_for_each_role_and_language(dashboard_url: str,  # noqa: F811
                                                           one_language_records: tuple[str, ...]) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    bad: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            for role, user in USERS.items():
                context = browser.new_context(viewport={"width": 1400, "height": 2400})
                page = context.new_page()
                page.set_default_timeout(60_000)
                _sign_in(page, dashboard_url, user)
                bad |= _walk(page, role, "zh", one_language_records)
                page.get_by_text("English", exact=True).click()
                page.wait_for_selector("[data-testid='stSidebarNav'] >> text=Portfolio")
                _settle(page)
                bad |= _walk(page, role, "en", one_language_records)
                context.close()
        finally:
            browser.close()
    assert not bad, bad
    shots = sorted(SHOTS.glob("*-*-*.png"))
    expected = 2 * sum(1 for _p, _t, _i, roles in PAGES for r in USERS if r in roles)
    assert len([s for s in shots if not s.name.startswith("docs-")]) >= expected
    assert all(s.stat().st_size > 20_000 for s in shots), [s.name for s in shots if s.stat().st_size <= 20_000]
    print(f"chromium pass: {expected} pages in {time.monotonic() - started:.0f} s")
