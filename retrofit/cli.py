"""The `retrofit` command: one entry point, one subcommand per job.

Each area registers its commands from its own module (``retrofit/cmd_*.py``) so the command tree stays in one
place but the code does not.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from buildings import DEFAULT_SITE
from retrofit.settings import settings_or_exit

if TYPE_CHECKING:
    from buildings.site import Site

app = typer.Typer(
    name="retrofit",
    help="Smart-building retrofit for old commercial buildings: collect, store, detect faults, track subsidies.\n\n"
    "Start with `retrofit demo`; see `retrofit COMMAND --help` for each job.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

site_app = typer.Typer(help="Check and show site files.  Example: retrofit site check buildings/sites/yuzhong",
                       no_args_is_help=True)
config_app = typer.Typer(help="Show effective settings.  Example: retrofit config show", no_args_is_help=True)
app.add_typer(site_app, name="site")
app.add_typer(config_app, name="config")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a clear error to stderr and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def load_site_or_exit(path: str) -> Site:
    """Load a site for a command, turning SiteError into a readable error and exit code 2."""
    from buildings.site import SiteError, load_site

    try:
        return load_site(path)
    except SiteError as exc:
        for p in exc.problems:
            err.print(str(p), style="red", highlight=False, markup=False, soft_wrap=True)
        err.print(f"{len(exc.problems)} problem(s); nothing was loaded.")
        raise typer.Exit(2) from None


@site_app.command("check")
def site_check(
    path: str = typer.Argument(DEFAULT_SITE, help="a building YAML file or a folder of them"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Validate a site file or folder and print a summary.

    Example: retrofit site check buildings/sites/yuzhong
    """
    site = load_site_or_exit(path)
    summary = site.summary()
    if as_json:
        print(json.dumps(summary))
        return
    nb = summary["buildings"]
    console.print(f"[green]OK[/] {escape(path)}: {nb} building{'s' if nb != 1 else ''}, {summary['devices']} devices, "
                  f"{summary['equipment']} equipment, {summary['points']} points", soft_wrap=True)
    for proto, n in summary["points_by_protocol"].items():
        console.print(f"  {proto:7s} {n} points")
    if summary["buildings"] > 1:
        for b in summary["by_building"]:
            split = ", ".join(f"{k} {v}" for k, v in b["points_by_protocol"].items() if v)
            console.print(escape(f"  {b['id']}: {b['devices']} devices, {b['points']} points ({split})"),
                          highlight=False)


@site_app.command("show")
def site_show(path: str = typer.Argument(DEFAULT_SITE, help="a building YAML file or a folder of them")) -> None:
    """Print the site as a tree: building -> equipment -> point (with source).

    Example: retrofit site show buildings/sites/yuzhong/jiefangbei-tower.yaml
    """
    site = load_site_or_exit(path)
    # piped output (less, a file) gets a wide console instead of rich's 80-column default
    out = console if console.is_terminal else Console(width=200, color_system=None)
    for bf in site.files:
        b = bf.building
        owners = sum(o.count for o in b.owners)
        retro = f", retrofit {b.retrofit_date} ({', '.join(b.retrofit_measures)})" if b.retrofit_date else ""
        tree = Tree(escape(f"{b.id}  {b.name.zh} / {b.name.en}") + f"  [dim]{b.use.value}, built {b.year_built}, "
                    f"{b.gross_floor_area_m2:,.0f} m2, {owners} owner(s) in {len(b.owners)} row(s){escape(retro)}[/]")
        devs = tree.add(f"devices ({len(bf.devices)})")
        for d in bf.devices:
            if d.protocol.value == "mqtt":
                addr = f"topics {d.topic_prefix or '(any)'}/..."
            else:
                addr = f"{d.host}:{d.serial_port or d.port or d.default_port}"
                addr += f" unit {d.unit_id}" if d.unit_id is not None else ""
                addr += f" instance {d.device_instance}" if d.device_instance is not None else ""
            devs.add(escape(f"{d.id} [{d.protocol.value}] {addr}, every {d.poll_interval_s:g} s"))
        for eq in bf.equipment:
            label = f"{eq.name} / {eq.name_zh}" if eq.name_zh else eq.name
            node = tree.add(f"[cyan]{eq.id}[/] {eq.kind} ({eq.brick_class}) " + escape(label))
            for p in eq.points:
                s = p.source
                where = (f"{s.function.value} {s.address} {s.type.value}" + (f".{s.bit}" if p.modbus.bit is not None
                                                                             else "") if p.modbus else
                         f"{s.object_type},{s.instance}" if p.bacnet else f"{s.topic} {s.value_path}")
                flags = "".join(f" {f}" for f, on in (("writable", p.writable), ("counter", p.counter),
                                                     (f"subitem={p.subitem}", p.subitem)) if on)
                rng = f" {p.range[0]:g}..{p.range[1]:g}" if p.range else ""
                node.add(escape(f"{p.id}  {p.brick} [{p.unit}{rng}]  <- {s.device}: {where}{flags}"))
        out.print(tree)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (environment > retrofit.toml > defaults) with secrets masked.

    Example: RETROFIT_INFLUX_URL=http://127.0.0.1:8086 retrofit config show
    """
    print(json.dumps(settings_or_exit().masked(), indent=2, default=str))


def _not_yet(name: str, issue: str) -> None:
    """Register a subcommand that a later issue fills in: a clear error, never a fake."""

    def cmd() -> None:
        raise fail(f"`retrofit {name}` is not available yet ({issue}).", code=3)

    cmd.__doc__ = f"Not available yet ({issue})."
    app.command(name, help=cmd.__doc__, context_settings={"allow_extra_args": True,
                                                           "ignore_unknown_options": True})(cmd)


def _register() -> None:
    """Attach each area's commands; an area whose module is missing shows a clear 'not available yet'."""
    import importlib

    areas = [
        ("retrofit.cmd_telemetry", ["store"], "issue 5"),
        ("retrofit.cmd_simulate", ["simulate", "backfill"], "issue 3"),
        ("retrofit.cmd_collect", ["collect", "discover", "write", "ingest"], "issue 4"),
        ("retrofit.cmd_rules", ["rules"], "issue 6"),
        ("retrofit.cmd_program", ["program", "subsidy", "savings"], "issue 7"),
        ("retrofit.cmd_records", ["records"], "issue 15"),
        ("retrofit.cmd_dashboard", ["dashboard", "users"], "issue 8"),
        ("retrofit.cmd_demo", ["demo"], "issue 9"),
        ("retrofit.cmd_api", ["api", "catalogue", "evidence", "export"], "issue 10"),
    ]
    for module, names, issue in areas:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            for n in names:
                _not_yet(n, issue)
            continue
        mod.register(app)


_register()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
