"""The dashboard's entry script: sign-in, session timeout, language switch and the role's pages.

Run it with `retrofit dashboard` (which passes the configured stores through RETROFIT_* settings).
"""

from __future__ import annotations

import streamlit as st

from dashboard import ui
from dashboard.auth import Role, authenticate
from dashboard.i18n import LANGUAGES, Tr

PAGES: list[tuple[str, str, str, frozenset[Role]]] = [
    # (file, title key, icon, roles)
    ("pages/portfolio.py", "page.portfolio", ":material/apartment:", frozenset(Role)),
    ("pages/building.py", "page.building", ":material/domain:", frozenset(Role)),
    ("pages/energy.py", "page.energy", ":material/bolt:", frozenset(Role)),
    ("pages/alarms.py", "page.alarms", ":material/notifications:", frozenset(Role)),
    ("pages/retrofit.py", "page.retrofit", ":material/construction:", frozenset({Role.OWNER, Role.DISTRICT})),
    ("pages/subsidies.py", "page.subsidies", ":material/payments:", frozenset({Role.OWNER, Role.DISTRICT})),
    ("pages/program.py", "page.program", ":material/account_balance:", frozenset({Role.DISTRICT})),
    ("pages/simulators.py", "page.simulators", ":material/science:", frozenset({Role.TECHNICIAN})),
]


# An inline SVG: Streamlit turns it into a data: URL. A ":material/...:" or emoji page icon makes the browser
# fetch the favicon from Google's font or an emoji CDN, which a district network without internet cannot reach.
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path fill="#37474f" d="M3 21V7l7-4v4l7-3v17'
           'h4v0H3zm3-3h2v-2H6zm0-4h2v-2H6zm0-4h2V8H6zm5 8h2v-2h-2zm0-4h2v-2h-2zm0-4h2V8h-2zm5 8h2v-2h-2zm0-4h2'
           'v-2h-2z"/></svg>')


def _client() -> str:
    """The client's address for throttling. The dashboard listens on 127.0.0.1, so a remote client comes through
    a reverse proxy: take the address that proxy appended (the last X-Forwarded-For entry; the first ones are
    whatever the client claimed)."""
    try:
        fwd = st.context.headers.get("X-Forwarded-For")
        return (fwd.split(",")[-1].strip() if fwd else None) or st.context.ip_address or "unknown"
    except Exception:  # noqa: BLE001 - no request context (tests): one shared bucket
        return "unknown"


def _language(default: str) -> Tr:
    """The sidebar switch; the choice lives in a plain session key so it survives page changes."""
    if st.session_state.get(ui.SESSION_LANG) not in LANGUAGES:
        st.session_state[ui.SESSION_LANG] = default if default in LANGUAGES else "zh"
    choice = st.sidebar.radio("语言 / Language", LANGUAGES, key="lang_choice", horizontal=True,
                              index=LANGUAGES.index(st.session_state[ui.SESSION_LANG]),
                              format_func=lambda x: {"zh": "中文", "en": "English"}[x])
    st.session_state[ui.SESSION_LANG] = choice
    return ui.tr()


def _login(rt: ui.Runtime, t: Tr) -> None:
    """The sign-in page (a page of its own, so it replaces every other page while signed out)."""
    st.title(t("app.title"))
    if st.session_state.pop("expired", False):
        st.warning(t("app.session_expired"))
    with st.form("login"):
        st.subheader(t("login.title"))
        username = st.text_input(t("login.username"), key="login_user")
        password = st.text_input(t("login.password"), type="password", key="login_password")
        submitted = st.form_submit_button(t("login.submit"))
    if not submitted:
        return
    try:
        result = authenticate(rt.engine, username, password, _client())
    except Exception as exc:  # noqa: BLE001 - a broken records DB is a message, not a traceback
        st.error(t("login.unavailable", error=type(exc).__name__))
        return
    if result.locked_for_s:
        st.error(t("login.locked", seconds=result.locked_for_s))
    elif result.principal is None:
        st.error(t("login.failed"))
    else:
        ui.sign_in(result.principal)
        st.rerun()


def main() -> None:
    st.set_page_config(page_title="Retrofit", page_icon=FAVICON, layout="wide")
    rt = ui.runtime()
    t = _language(rt.settings.language)
    if ui.session_principal(rt) is None:
        st.navigation([st.Page(lambda: _login(rt, t), title=t("login.title"), url_path="login")],
                      position="hidden").run()
        return
    p = ui.principal()
    assert p is not None
    st.sidebar.caption(t("app.signed_in_as", user=p.username, role=t(f"role.{p.role.value}")))
    if st.sidebar.button(t("app.sign_out"), key="sign_out"):
        ui.sign_out()
        st.rerun()
    pages = [st.Page(path, title=t(title), icon=icon, url_path=path.split("/")[1].removesuffix(".py"))
             for path, title, icon, roles in PAGES if p.role in roles]
    nav = st.navigation(pages)
    nav.run()


if __name__ == "__main__":  # streamlit runs the entry script as __main__
    main()
