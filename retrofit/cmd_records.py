"""`retrofit records`: the records database's schema (Alembic): upgrade, downgrade, current, history.

The database is ``settings.records_url`` (``RETROFIT_RECORDS_URL``; SQLite in the data dir by default), or
``--url``. Commands that open the records database also upgrade it when they start; `records upgrade` is the
explicit step for an upgrade of the software (docs/operator-guide.md, "Upgrades").
"""

from __future__ import annotations

import typer

records_app = typer.Typer(help="The records database schema (Alembic migrations).  "
                               "Example: retrofit records upgrade", no_args_is_help=True)

URL_HELP = "records database URL (default: RETROFIT_RECORDS_URL / settings, else SQLite in the data dir)"


def register(app: typer.Typer) -> None:
    """Attach `records` to the retrofit command."""
    app.add_typer(records_app, name="records")


def _url(url: str | None) -> str:
    from retrofit.cli import fail
    from retrofit.settings import SettingsError, load_settings

    if url:
        return url
    try:
        return load_settings().effective_records_url
    except SettingsError as exc:
        raise fail(str(exc)) from None


def _run(step: str, url: str, revision: str) -> None:
    """Run one migration step, saying what it did; a database that cannot be reached or migrated exits 1."""
    from alembic.util.exc import CommandError
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from buildings.records import migrate
    from retrofit.cli import console, fail

    where = make_url(url).render_as_string(hide_password=True)
    try:
        done = getattr(migrate, step)(url, revision)
    except CommandError as exc:
        raise fail(f"{where}: {exc} (see `retrofit records history`)") from None
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise fail(f"{where}: cannot {step} the records database: {reason}") from None
    console.print(done.describe(), highlight=False, markup=False, soft_wrap=True)


@records_app.command("upgrade")
def records_upgrade(
    revision: str = typer.Option("head", "--revision", help="revision to upgrade to (default: the newest)"),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Migrate the records database to the newest schema (or to --revision) and say from which revision to which.
    Safe to run again, and while other processes start: one migrator at a time, all in one transaction.

    Example: RETROFIT_RECORDS_URL=postgresql://retrofit@db.example/retrofit retrofit records upgrade
    """
    _run("upgrade", _url(url), revision)


@records_app.command("downgrade")
def records_downgrade(
    revision: str = typer.Argument(..., help="revision to go back to (`records history`), or 'base' for none"),
    yes: bool = typer.Option(False, "--yes", help="confirm: the tables newer revisions made are dropped"),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Take the records database back to an earlier schema. Every step back drops the tables its revision made,
    with their rows: back up first (pg_dump / sqlite3 .backup). To go back with the data, restore the backup.

    Example: retrofit records downgrade 0002_area_tables --yes
    """
    from retrofit.cli import fail

    if not yes:
        raise fail("downgrading drops the tables newer revisions made, with their rows; back up the records "
                   "database first, then run again with --yes", code=2)
    _run("downgrade", _url(url), revision)


@records_app.command("current")
def records_current(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """Print the revision the records database is at, and whether it is the newest.

    Example: retrofit records current
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from buildings.records.migrate import current, head
    from retrofit.cli import console, fail

    target = _url(url)
    where = make_url(target).render_as_string(hide_password=True)
    try:
        rev = current(target)
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise fail(f"{where}: cannot read the records database: {reason}") from None
    newest = head()
    state = "the newest" if rev == newest else f"behind {newest}: run `retrofit records upgrade`"
    console.print(f"records database {where}: at {rev or 'no revision (empty)'} ({state})", highlight=False,
                  markup=False, soft_wrap=True)


@records_app.command("history")
def records_history() -> None:
    """List the schema revisions, oldest first.

    Example: retrofit records history
    """
    from buildings.records.migrate import history
    from retrofit.cli import console

    for rev, down, doc in history():
        console.print(f"{rev}  (after {down or 'nothing'})  {doc}", highlight=False, markup=False, soft_wrap=True)
