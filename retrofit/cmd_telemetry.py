"""`retrofit store ...`: which telemetry store is configured, whether it answers, and the buffer in front of it."""

from __future__ import annotations

import json
from typing import Any

import typer

from retrofit.settings import settings_or_exit

store_app = typer.Typer(help="Check the telemetry store and its durable buffer.  Example: retrofit store check",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach `retrofit store` to the main command."""
    app.add_typer(store_app, name="store")


def store_report(settings: Any) -> dict[str, Any]:
    """What `store check` prints: store kind, where, version, reachability, buffer depth, dead letters."""
    from telemetry.buffer import buffer_status
    from telemetry.store import StoreAuthError, StoreError

    report: dict[str, Any] = {"reachable": False, "version": None, "problem": None, "todo": None}
    if settings.influx_url:
        from telemetry.influx import InfluxStore, strip_credentials

        report.update(store="influxdb", where=f"{strip_credentials(settings.influx_url)[0]} database "
                      f"{settings.influx_database}")
        try:
            store = InfluxStore.from_settings(settings, create=False)
        except StoreAuthError as exc:
            report.update(problem=str(exc), todo="set the right RETROFIT_INFLUX_TOKEN, or RETROFIT_INFLUX_USERNAME "
                          "and RETROFIT_INFLUX_PASSWORD, in the environment")
        except StoreError as exc:
            report.update(problem=str(exc), todo="start InfluxDB or fix RETROFIT_INFLUX_URL; unset it to use the "
                          "embedded store. Collectors keep readings in the buffer until it answers")
        else:
            report.update(reachable=True, version=store.version(), database_exists=store.database_exists,
                          continuous_queries=store.continuous_queries)
            if not store.database_exists:
                report["note"] = "the database does not exist yet: `retrofit collect` creates it on start"
            store.close()
    else:
        from telemetry.embedded import EmbeddedStore

        path = settings.embedded_store_path
        report.update(store="embedded", where=str(path))
        if not path.exists():
            parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
            import os

            if parent is not None and os.access(parent, os.W_OK):
                import sqlite3

                report.update(reachable=True, version=f"SQLite {sqlite3.sqlite_version}",
                              note="no readings yet: the file is created on the first write")
            else:
                report.update(problem=f"{path.parent} cannot be created or written",
                              todo="set RETROFIT_DATA_DIR to a writable folder")
        else:
            try:
                store = EmbeddedStore(path, readonly=True)
                report.update(reachable=True, version=store.ping(), series=len(store.series()))
                store.close()
            except StoreError as exc:
                report.update(problem=str(exc), todo="check the file and the disk; move it aside to start afresh")
    status = buffer_status(settings.buffer_dir, settings.buffer_max_mb * 2**20)
    report["buffer"] = status.as_dict()
    return report


@store_app.command("check")
def check(as_json: bool = typer.Option(False, "--json", help="print the report as JSON")) -> None:
    """Show which store is configured, its version and reachability, the buffer depth and dead letters.

    Exits 1 when the store cannot be reached or refuses the credentials, saying what to do.

    Example: RETROFIT_INFLUX_URL=http://127.0.0.1:8086 retrofit store check
    """
    from retrofit.cli import console, err

    report = store_report(settings_or_exit())
    buf = report["buffer"]
    if as_json:
        print(json.dumps(report, default=str))
    else:
        console.print(f"store:        {report['store']} ({report['where']})", highlight=False, soft_wrap=True)
        ok = "[green]yes[/]" if report["reachable"] else "[red]NO[/]"
        console.print(f"reachable:    {ok}   version: {report['version'] or '-'}", highlight=False, soft_wrap=True)
        if report.get("note"):
            console.print(f"note:         {report['note']}", highlight=False, soft_wrap=True)
        console.print(f"buffer:       {buf['depth_readings']:,} readings in {buf['depth_batches']:,} batches, "
                      f"{buf['pending_bytes'] / 2**20:.1f} of {buf['max_bytes'] / 2**20:.0f} MiB, {buf['state']} "
                      f"({buf['directory']})", highlight=False, soft_wrap=True)
        dl = "[yellow]" if buf["dead_letters"] else ""
        console.print(f"dead letters: {dl}{buf['dead_letters']}{'[/]' if dl else ''}"
                      + (f" (inspect {buf['directory']}/dead-letter/)" if buf["dead_letters"] else ""),
                      highlight=False, soft_wrap=True)
    if not report["reachable"]:
        err.print(f"[bold red]error:[/] {report['problem']}", highlight=False, markup=True, soft_wrap=True)
        err.print(f"what to do: {report['todo']}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    if buf["state"] == "full":
        err.print("[bold red]error:[/] the buffer is full: new readings are refused until the store catches up",
                  highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(1)


@store_app.command("downsample")
def downsample(days: float = typer.Option(30.0, help="roll up this many days back from now"),
               end_days_ago: float = typer.Option(0.0, "--end-days-ago", help="stop this many days before now")
               ) -> None:
    """Compute the hourly rollups (measurement readings_1h) over past data in InfluxDB.

    Continuous queries only see the current hour, so history written in bulk (`retrofit backfill`) and servers
    without continuous queries (InfluxDB 2.x/3.x) need this. Safe to repeat. The embedded store needs none.

    Example: retrofit store downsample --days 400
    """
    import time

    from retrofit.cli import console, fail
    from telemetry.store import StoreError

    settings = settings_or_exit()
    if not settings.influx_url:
        raise fail("downsampling is for InfluxDB: set RETROFIT_INFLUX_URL (the embedded store aggregates raw data)")
    from telemetry.influx import InfluxStore

    now = time.time()
    end = now - end_days_ago * 86400
    end -= end % 3600
    try:
        with InfluxStore.from_settings(settings) as store:
            rows = 0
            t = end - days * 86400
            while t < end:  # a week per query keeps each answer small
                rows += store.downsample(t, min(t + 7 * 86400, end))
                t += 7 * 86400
    except StoreError as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {rows:,} hourly rollup rows", highlight=False)
