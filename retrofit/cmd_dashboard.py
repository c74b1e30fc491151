"""`retrofit dashboard` (the Streamlit app on 127.0.0.1) and `retrofit users` (dashboard accounts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from retrofit.settings import Settings

users_app = typer.Typer(help="Dashboard users: add, list, disable.  Example: retrofit users list",
                        no_args_is_help=True)
APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def _engine() -> tuple[Settings, Engine]:
    from buildings.records.base import make_engine
    from retrofit.settings import settings_or_exit

    s = settings_or_exit()
    return s, make_engine(s.effective_records_url)


def dashboard(
    port: int | None = typer.Option(None, help="port on 127.0.0.1 (default: settings.dashboard_port)"),
    site: str | None = typer.Option(None, help="site file or folder (default: settings.site or the sample)"),
) -> None:
    """Start the dashboard on 127.0.0.1 with the configured stores (Ctrl-C stops it).

    The telemetry store, records database and site come from retrofit.toml / RETROFIT_* settings; an
    unreachable store shows as a message on the page. Create users first with `retrofit users add`.

    Example: retrofit users add --role district dora && retrofit dashboard --port 8501
    """
    from retrofit.cli import DEFAULT_SITE, console, load_site_or_exit
    from retrofit.settings import settings_or_exit

    s = settings_or_exit()
    site_path = site or str(s.site or DEFAULT_SITE)
    load_site_or_exit(site_path)  # a broken site file is a clear CLI error, not a broken page
    env = dict(os.environ, RETROFIT_SITE=os.path.abspath(site_path))
    port = port or s.dashboard_port
    argv = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
            "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--global.developmentMode", "false",
            "--client.toolbarMode", "minimal"]
    console.print(f"dashboard: http://127.0.0.1:{port}  (site {site_path}, store "
                  f"{'InfluxDB' if s.influx_url else s.embedded_store_path})")
    proc = subprocess.Popen(argv, env=env)
    try:
        raise typer.Exit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., help="the sign-in name"),
    role: str = typer.Option(..., "--role", help="owner | district | technician"),
    owner: str | None = typer.Option(None, "--owner", help="owner id from the site files (owner users only)"),
) -> None:
    """Add a dashboard user. The password is read from RETROFIT_NEW_PASSWORD or prompted for, never an argument.

    Example: retrofit users add --role owner --owner yuxin-property yuxin-fm
    """
    from dashboard.auth import AuthError, add_user
    from retrofit.cli import console, fail

    s, engine = _engine()
    password = os.environ.get("RETROFIT_NEW_PASSWORD")
    if not password:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    known = None
    if owner:
        from buildings.site import SiteError, load_site
        from retrofit.cli import DEFAULT_SITE

        try:
            site = load_site(str(s.site or DEFAULT_SITE))
            known = {o.owner for b in site.buildings for o in b.owners}
        except SiteError:
            known = None  # without a readable site the owner id cannot be checked here
    try:
        add_user(engine, username, password, role, owner, known_owners=known)
    except AuthError as exc:
        raise fail(str(exc), code=2) from None
    console.print(f"added {role} user {username}" + (f" (owner {owner})" if owner else ""))


@users_app.command("list")
def users_list() -> None:
    """List dashboard users (name, role, owner, created, disabled); never shows a password hash.

    Example: retrofit users list
    """
    from dashboard.auth import list_users

    _, engine = _engine()
    for u in list_users(engine):
        state = "disabled" if u.disabled else "active"
        typer.echo(f"{u.username:24s} {u.role:11s} {u.owner_id or '-':24s} {u.created:%Y-%m-%d} {state}")


@users_app.command("disable")
def users_disable(
    username: str = typer.Argument(..., help="the user to disable"),
    enable: bool = typer.Option(False, "--enable", help="re-enable instead"),
) -> None:
    """Disable a user: their open sessions end at their next click. --enable undoes it.

    Example: retrofit users disable yuxin-fm
    """
    from dashboard.auth import AuthError, set_disabled
    from retrofit.cli import console, fail

    _, engine = _engine()
    try:
        set_disabled(engine, username, not enable)
    except AuthError as exc:
        raise fail(str(exc), code=2) from None
    console.print(f"{'enabled' if enable else 'disabled'} {username}")


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
    app.add_typer(users_app, name="users")
