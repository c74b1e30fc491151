"""Runtime wiring shared by the app and its pages: resources cached per process, the session's principal,
language and Scope, and a guard that turns missing or unreachable data into a message instead of a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import streamlit as st

from buildings import DEFAULT_SITE
from buildings.site import Site, SiteError, load_site
from dashboard.auth import Principal, Role
from dashboard.i18n import Tr
from dashboard.scope import Can, Scope, ScopeDenied, Unavailable
from telemetry.store import Agg, Store

SESSION_PRINCIPAL = "principal"
SESSION_LAST_SEEN = "last_seen"
SESSION_LANG = "lang"
STORE_RETRY_S = 20.0
_STORE_FAILURES: dict[str, tuple[float, str]] = {}  # store key -> (when, message) of the last failed open


@dataclass(frozen=True)
class Runtime:
    """Per-process settings-derived resources."""

    settings: Any
    site: Site | None
    site_error: str | None
    engine: Any


def settings() -> Any:
    from retrofit.settings import load_settings

    return load_settings()


@st.cache_resource(show_spinner=False)
def _site(path: str, mtime: float) -> Site:
    return load_site(path)


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Any:
    from buildings.records.base import make_engine
    from dashboard.auth import create_tables

    engine = make_engine(url)
    create_tables(engine)
    return engine


@st.cache_resource(show_spinner=False)
def _store(key: str, _settings: Any) -> Store:
    """The configured store; a failure is not cached, so the next run tries again."""
    from telemetry import open_store

    return open_store(_settings, readonly=True)


@st.cache_data(ttl=300, show_spinner=False, max_entries=5000)
def _cached_aggregate(store_id: str, keys: tuple[str, ...], start: float, end: float, window_s: int, agg: str,
                      tz: str, _store: Store) -> dict[str, list[tuple[float, float]]]:
    return _store.aggregate(list(keys), start, end, window_s, Agg(agg), tz)


@st.cache_data(ttl=20, show_spinner=False, max_entries=500)
def _cached_latest(store_id: str, building: str, _store: Store, _keys: tuple[str, ...]) -> dict:
    """Live values: one query per building per 20 s however many people look (collectors poll every 60 s)."""
    return _store.latest(points=list(_keys))


def _site_mtime(path: str) -> float:
    import os

    p = os.path.abspath(path)
    if os.path.isdir(p):
        return max([os.path.getmtime(os.path.join(p, n)) for n in os.listdir(p)] + [os.path.getmtime(p)])
    return os.path.getmtime(p) if os.path.exists(p) else 0.0


def runtime() -> Runtime:
    s = settings()
    path = str(s.site or DEFAULT_SITE)
    site, error = None, None
    try:
        site = _site(path, _site_mtime(path))
    except SiteError as exc:
        error = "; ".join(str(p) for p in exc.problems[:3])
    return Runtime(s, site, error, _engine(s.effective_records_url))


def store_key(s: Any) -> str:
    """A cache key for the configured store that never contains a secret."""
    raw = f"{s.influx_url}|{s.influx_database}|{s.influx_username}|{s.embedded_store_path}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def tr() -> Tr:
    return Tr(st.session_state.get(SESSION_LANG, "zh"))


def principal() -> Principal | None:
    raw = st.session_state.get(SESSION_PRINCIPAL)
    if not raw:
        return None
    return Principal(raw["username"], Role(raw["role"]), raw.get("owner_id"))


def sign_in(p: Principal) -> None:
    st.session_state[SESSION_PRINCIPAL] = {"username": p.username, "role": p.role.value, "owner_id": p.owner_id}
    st.session_state[SESSION_LAST_SEEN] = time.time()


def sign_out() -> None:
    for k in (SESSION_PRINCIPAL, SESSION_LAST_SEEN):
        st.session_state.pop(k, None)


def session_principal(rt: Runtime) -> Principal | None:
    """The signed-in principal if the session is live: not timed out, account still there and enabled.

    Called by the entry script and again by every page through scope(), so a page never trusts a session
    that the entry script did not check (AppTest, for one, runs a page without its entry script).
    """
    from sqlalchemy import select

    from buildings.records.base import session_factory
    from dashboard.auth import User

    p = principal()
    if p is None:
        return None
    if time.time() - st.session_state.get(SESSION_LAST_SEEN, 0.0) > rt.settings.session_timeout_min * 60:
        sign_out()
        st.session_state["expired"] = True
        return None
    with session_factory(rt.engine)() as s:
        user = s.scalar(select(User).where(User.username == p.username))
    if user is None or user.disabled or user.role != p.role.value or user.owner_id != p.owner_id:
        sign_out()
        return None
    st.session_state[SESSION_LAST_SEEN] = time.time()
    return p


def scope(require: Can | None = None) -> Scope:
    """The signed-in user's Scope for this run: the only way a page gets at data.

    ``require``: what the page needs beyond reading (programme, records, simulate); without it the page stops
    with a message. Pages check this themselves: the menu hiding a page is a convenience, not the guard.
    """
    rt = runtime()
    p = session_principal(rt)
    if p is None:
        if st.session_state.pop("expired", False):
            st.warning(tr()("app.session_expired"))
        st.info(tr()("login.title"))
        st.stop()
    if rt.site is None:
        st.error(tr()("app.site_missing", path=str(rt.settings.site or DEFAULT_SITE), error=rt.site_error))
        st.stop()
    store, err = None, None
    key = store_key(rt.settings)
    failed = _STORE_FAILURES.get(key)
    if failed is not None and time.monotonic() - failed[0] < STORE_RETRY_S:
        err = failed[1]  # a dead store is not asked again on every click (a timeout would stall each one)
    else:
        try:
            store = _store(key, rt.settings)
            _STORE_FAILURES.pop(key, None)
        except Exception as exc:  # noqa: BLE001 - any failure to open the store becomes a page message
            err = str(exc) or type(exc).__name__
            _STORE_FAILURES[key] = (time.monotonic(), err)
    sc = Scope(principal=p, site=rt.site, store=store, store_error=err, engine=rt.engine, store_id=key,
               cache=_cached_aggregate, latest_cache=_cached_latest)
    if require is not None and not sc.can(require):
        st.error(tr()("app.page_denied"))
        st.stop()
    return sc


@contextlib.contextmanager
def guard(t: Tr) -> Iterator[None]:
    """Show a missing or forbidden piece as a message and carry on with the rest of the page."""
    try:
        yield
    except Unavailable as exc:
        msg = str(exc)
        if msg.startswith(("alarms (", "retrofit records (", "records database", "simulator")):
            st.info(t("app.feature_missing", what=msg))
        else:
            st.warning(t("app.store_unavailable", error=msg))
    except ScopeDenied:
        st.error(t("app.not_found"))


def now_rounded(step_s: int = 300) -> float:
    """Now, rounded down to step_s, so reruns within a few minutes hit the aggregate cache."""
    return float(int(time.time() // step_s * step_s))


def choose_building(sc: Scope, t: Tr, key: str = "building") -> str | None:
    """A building picker that also honours ?building=ID, but only for a building the user may see."""
    files = sc.buildings()
    if not files:
        st.info(t("app.no_buildings"))
        return None
    ids = [f.building.id for f in files]
    names = {f.building.id: t.pick(f.building.name.zh, f.building.name.en) for f in files}
    wanted = st.query_params.get("building")
    if wanted is not None and wanted not in ids:
        st.error(t("app.not_found"))
        del st.query_params["building"]
        wanted = None
    index = ids.index(wanted) if wanted in ids else 0
    # the key carries the language: a keyed widget keeps its first option labels in the browser
    bid = st.selectbox(t("building.choose"), ids, index=index, format_func=lambda b: f"{names[b]} ({b})",
                       key=f"{key}_{t.lang}")
    if bid and st.query_params.get("building") != bid:
        st.query_params["building"] = bid
    return bid
