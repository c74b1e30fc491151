"""`retrofit api`, `users token ...`, `catalogue export`, `export energy|owners`, `evidence ...`, `contacts import`.

The API and exports read the configured site, records database and telemetry store (retrofit.toml / RETROFIT_*).
Secrets (tokens, private keys, passphrases) are shown once or read from the environment, never logged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from retrofit.settings import settings_or_exit

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from buildings.site import Site
    from retrofit.settings import Settings
    from telemetry.store import Store

token_app = typer.Typer(help="API tokens: create, list, revoke.  Example: retrofit users token list",
                        no_args_is_help=True)
catalogue_app = typer.Typer(help="The resource catalogue.  Example: retrofit catalogue export --format csv",
                            no_args_is_help=True)
export_app = typer.Typer(help="Exports for the city platform.  Example: retrofit export energy --building "
                              "jiefangbei-tower --from 2026-11-01 --to 2026-11-02", no_args_is_help=True)
evidence_app = typer.Typer(help="Signed evidence and the audit chain.  Example: retrofit evidence verify",
                           no_args_is_help=True)
contacts_app = typer.Typer(help="Owners' contact persons (personal information).  Example: retrofit contacts "
                                "import contacts.csv", no_args_is_help=True)


def _engine(s: Settings) -> Engine:
    from buildings.records.base import make_engine

    return make_engine(s.effective_records_url)


def _site(s: Settings, site: str | None) -> Site:
    from retrofit.cli import DEFAULT_SITE, load_site_or_exit

    return load_site_or_exit(site or str(s.site or DEFAULT_SITE))


def _store(s: Settings) -> tuple[Store | None, str | None]:
    from telemetry import open_store
    from telemetry.store import StoreError

    try:
        return open_store(s, readonly=True), None
    except StoreError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - e.g. an embedded file that does not exist yet
        return None, f"telemetry store not readable ({type(exc).__name__}: {exc})"


# --- api --------------------------------------------------------------------------------------------------------
def api(
    port: int | None = typer.Option(None, help="port on 127.0.0.1 (default: settings.api_port)"),
    site: str | None = typer.Option(None, help="site file or folder (default: settings.site or the sample)"),
) -> None:
    """Start the read-only HTTP API on 127.0.0.1 (OpenAPI at /openapi.json, data under /api/v1).

    Create a token first with `retrofit users token create`; send it as `Authorization: Bearer rft_...`.

    Example: retrofit api --port 8600
    """
    import uvicorn

    from api.app import create_app
    from buildings.records.migrate import upgrade
    from retrofit.cli import console

    s = settings_or_exit()
    st = _site(s, site)
    store, err = _store(s)
    engine = _engine(s)
    upgrade(s.effective_records_url, engine=engine)  # the audit log must exist: every request is recorded
    app = create_app(st, engine, store, err)
    port = port or s.api_port
    console.print(f"api: http://127.0.0.1:{port}/api/v1  (OpenAPI: http://127.0.0.1:{port}/openapi.json)")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level=s.log_level.lower(), access_log=False)


# --- users token --------------------------------------------------------------------------------------------------
@token_app.command("create")
def token_create(
    role: str = typer.Option(..., "--role", help="owner | district | technician"),
    owner: str | None = typer.Option(None, "--owner", help="owner id from the site files (owner tokens only)"),
    expires: float = typer.Option(90, "--expires", help="days until the token expires"),
    name: str = typer.Option("", "--name", help="what the token is for (e.g. the system that uses it)"),
    rate: int = typer.Option(120, "--rate", help="requests per minute before 429"),
    pii: bool = typer.Option(False, "--pii", help="district only: may read owners' personal information"),
) -> None:
    """Create an API token and print it once (only its SHA-256 is stored).

    Example: retrofit users token create --role owner --owner yuxin-property --expires 30 --name bms-vendor
    """
    from api.tokens import TokenError, create_token
    from retrofit.cli import err, fail

    s = settings_or_exit()
    known = None
    if owner:
        from buildings.site import SiteError, load_site
        from retrofit.cli import DEFAULT_SITE

        try:
            known = {o.owner for b in load_site(str(s.site or DEFAULT_SITE)).buildings for o in b.owners}
        except SiteError:
            known = None
    try:
        rec, text = create_token(_engine(s), name, role, expires, owner, pii, rate,
                                 created_by=os.environ.get("USER", "cli"), known_owners=known)
    except TokenError as exc:
        raise fail(str(exc), code=2) from None
    err.print(f"token {rec.id}: {rec.role}" + (f" of {rec.owner_id}" if rec.owner_id else "")
              + f", expires {rec.expires:%Y-%m-%d %H:%M} UTC, {rec.rate_per_min}/min"
              + (", pii" if rec.pii else "") + ". Shown once; store it as a secret:", highlight=False)
    typer.echo(text)


@token_app.command("list")
def token_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List tokens (id, name, role, owner, rights, expiry, state); never the token itself.

    Example: retrofit users token list
    """
    from api.tokens import list_tokens

    rows = [{"id": t.id, "name": t.name, "role": t.role, "owner": t.owner_id, "pii": t.pii,
             "rate_per_min": t.rate_per_min, "created": t.created.isoformat(), "expires": t.expires.isoformat(),
             "state": t.state()} for t in list_tokens(_engine(settings_or_exit()))]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        typer.echo(f"{r['id']}  {r['role']:10s} {r['owner'] or '-':22s} {'pii' if r['pii'] else '-':4s} "
                   f"{r['rate_per_min']:>5d}/min  expires {r['expires'][:16]}  {r['state']:8s} {r['name']}")


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., help="the token id (as in `token list`)")) -> None:
    """Revoke a token: its next request gets 401.

    Example: retrofit users token revoke k3j9x0a2bq
    """
    from api.tokens import TokenError, revoke_token
    from retrofit.cli import console, fail

    try:
        rec = revoke_token(_engine(settings_or_exit()), token_id)
    except TokenError as exc:
        raise fail(str(exc), code=2) from None
    console.print(f"revoked {rec.id} ({rec.name})")


# --- catalogue ----------------------------------------------------------------------------------------------------
@catalogue_app.command("export")
def catalogue_export(
    fmt: str = typer.Option("json", "--format", help="json | csv"),
    out: Path | None = typer.Option(None, "--out", help="write here instead of stdout"),
    brick_dir: Path | None = typer.Option(None, "--brick-dir", help="also write one Brick Turtle file per building"),
    site: str | None = typer.Option(None, help="site file or folder"),
) -> None:
    """Export the resource catalogue (every shareable dataset) and optionally each building's Brick model.

    Example: retrofit catalogue export --format csv --out catalogue.csv --brick-dir brick/
    """
    from api import catalogue
    from api.model import brick_turtle
    from retrofit.cli import err, fail

    if fmt not in ("json", "csv"):
        raise fail("--format must be json or csv", code=2)
    st = _site(settings_or_exit(), site)
    text = (json.dumps({"datasets": catalogue.as_dicts(st)}, ensure_ascii=False, indent=1) if fmt == "json"
            else catalogue.to_csv(st))
    _write(text, out)
    if brick_dir is not None:
        brick_dir.mkdir(parents=True, exist_ok=True)
        for bf in st.files:
            (brick_dir / f"{bf.building.id}.ttl").write_text(brick_turtle(bf), encoding="utf-8")
        err.print(f"wrote {len(st.files)} Brick model(s) to {brick_dir}")


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)


# --- export -------------------------------------------------------------------------------------------------------
def _parse_time(text: str, tz: str, what: str) -> float:
    """ISO date or datetime (naive = the building's local time) or epoch seconds -> UTC epoch seconds."""
    from retrofit.cli import fail
    from telemetry.windows import zone

    try:
        return float(text)
    except ValueError:
        pass
    try:
        d = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{what} {text!r}: use an ISO date/time like 2026-11-01 or 2026-11-01T08:00", code=2) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=zone(tz))
    return d.timestamp()


@export_app.command("energy")
def export_energy(
    building: list[str] = typer.Option(None, "--building", help="building id (repeat; default: all)"),
    start: str | None = typer.Option(None, "--from", help="ISO date/time (building local) or epoch s"),
    end: str | None = typer.Option(None, "--to", help="ISO date/time or epoch s (exclusive)"),
    resolution: str = typer.Option("1h", "--resolution", help="15min | 1h"),
    fmt: str = typer.Option("csv", "--format", help="csv | json"),
    out: Path | None = typer.Option(None, "--out", help="one file (one building); default stdout"),
    out_dir: Path | None = typer.Option(None, "--out-dir", help="one file per building, named by code and period"),
    every: str | None = typer.Option(None, "--every", help="scheduled: 15min | 1h | 1d; exports each new period"),
    iterations: int = typer.Option(0, "--iterations", help="with --every: stop after N rounds (0 = forever)"),
    site: str | None = typer.Option(None, help="site file or folder"),
) -> None:
    """Export sub-item energy (electricity by sub-item, water, gas) per building for the city platform.

    Each file carries the building code and the period; the format is in docs/api.md. With --every the
    command runs as a scheduled job: each round exports the periods completed since the last round (kept in
    OUT_DIR/.export-state.json, so a restart neither skips nor repeats a period).

    Example: retrofit export energy --building jiefangbei-tower --from 2026-11-01 --to 2026-11-02 --resolution 15min
    """
    from api import exports
    from retrofit.cli import err, fail

    if resolution not in exports.RESOLUTIONS:
        raise fail("--resolution must be 15min or 1h", code=2)
    if fmt not in ("csv", "json"):
        raise fail("--format must be csv or json", code=2)
    s = settings_or_exit()
    st = _site(s, site)
    ids = building or [b.id for b in st.buildings]
    known = {b.id for b in st.buildings}
    for b in ids:
        if b not in known:
            raise fail(f"--building {b!r} is not in the site; known: {', '.join(sorted(known))}", code=2)
    store, store_err = _store(s)
    if store is None:
        raise fail(f"telemetry store: {store_err}")
    try:
        if every:
            if out_dir is None:
                raise fail("--every needs --out-dir", code=2)
            _scheduled(store, st, ids, resolution, fmt, out_dir, every, iterations)
            return
        if start is None or end is None:
            raise fail("give --from and --to (or --every for the scheduled job)", code=2)
        if out is not None and len(ids) > 1:
            raise fail("--out takes one building; use --out-dir for several", code=2)
        for b in ids:
            tz = st.building(b).building.timezone
            t0, t1 = _parse_time(start, tz, "--from"), _parse_time(end, tz, "--to")
            try:
                rows = exports.energy_rows(store, st, b, t0, t1, resolution)  # type: ignore[arg-type]
            except exports.ExportError as exc:
                raise fail(str(exc), code=2) from None
            text = exports.to_csv(rows) if fmt == "csv" else exports.to_json(rows, st, b, t0, t1, resolution)
            if out_dir is not None:
                path = out_dir / exports.file_name(st, b, t0, t1, resolution, fmt)
                _write(text, path)
                err.print(f"{b}: {len(rows)} rows -> {path}")
            else:
                _write(text, out)
    finally:
        store.close()


EVERY = {"15min": 900, "1h": 3600, "1d": 86400}


def _scheduled(store: Any, st: Any, ids: list[str], resolution: str, fmt: str, out_dir: Path, every: str,
               iterations: int) -> None:
    """The export loop: each round writes [last exported end, the last completed period end) per building."""
    from api import exports
    from retrofit.cli import err, fail

    if every not in EVERY:
        raise fail("--every must be 15min, 1h or 1d", code=2)
    step = EVERY[every]
    if step < exports.RESOLUTIONS[resolution]:
        raise fail("--every must be at least the resolution", code=2)
    state_path = out_dir / ".export-state.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    state: dict[str, float] = json.loads(state_path.read_text()) if state_path.exists() else {}
    n = 0
    while True:
        now = time.time()
        for b in ids:
            tz = st.building(b).building.timezone
            from telemetry.windows import zone

            local = dt.datetime.fromtimestamp(now, zone(tz))
            offset = local.utcoffset().total_seconds() if local.utcoffset() else 0.0
            period_end = (now + offset) // step * step - offset  # the last local period boundary
            period_start = state.get(f"{b}/{resolution}", period_end - step)
            if period_end <= period_start:
                continue
            rows = exports.energy_rows(store, st, b, period_start, period_end, resolution)  # type: ignore[arg-type]
            text = (exports.to_csv(rows) if fmt == "csv"
                    else exports.to_json(rows, st, b, period_start, period_end, resolution))
            path = out_dir / exports.file_name(st, b, period_start, period_end, resolution, fmt)
            _write(text, path)
            state[f"{b}/{resolution}"] = period_end
            _write(json.dumps(state), state_path)
            err.print(f"{b}: {len(rows)} rows -> {path}")
        n += 1
        if iterations and n >= iterations:
            return
        next_round = (time.time() // step + 1) * step + 5  # a few seconds after the boundary
        time.sleep(max(1.0, next_round - time.time()))


@export_app.command("owners")
def export_owners(
    fmt: str = typer.Option("csv", "--format", help="csv | json"),
    out: Path | None = typer.Option(None, "--out", help="write here instead of stdout"),
    site: str | None = typer.Option(None, help="site file or folder"),
) -> None:
    """Export owner rows, shares and contacts; personal fields are masked unless RETROFIT_API_TOKEN holds a
    district token with the pii right.

    Example: RETROFIT_API_TOKEN=rft_... retrofit export owners --format json
    """
    import csv
    import io

    from api import pii
    from api.tokens import authenticate
    from retrofit.cli import err, fail

    if fmt not in ("csv", "json"):
        raise fail("--format must be csv or json", code=2)
    s = settings_or_exit()
    st, engine = _site(s, site), _engine(s)
    from api.tokens import create_tables

    create_tables(engine)
    tp = authenticate(engine, os.environ.get("RETROFIT_API_TOKEN"))
    unmasked = bool(tp and tp.may_see_pii)
    if os.environ.get("RETROFIT_API_TOKEN") and tp is None:
        raise fail("RETROFIT_API_TOKEN is not a valid, unexpired token", code=2)
    rows = [{"building_id": b.id, **o} for b in st.buildings for o in pii.owners_of(b, engine, unmasked)]
    if tp is not None and tp.principal.role.value == "owner":
        from dashboard.scope import owner_buildings

        mine = set(owner_buildings(st, tp.principal.owner_id or ""))
        rows = [r for r in rows if r["building_id"] in mine]
    from api.evidence import append_audit

    append_audit(engine, f"token:{tp.token_id}" if tp else "cli", "export", "owners", "all", None,
                 {"rows": len(rows), "masked": not unmasked})
    if fmt == "json":
        _write(json.dumps({"masked": not unmasked, "owners": rows}, ensure_ascii=False, indent=1), out)
    else:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["building_id", "owner_id", "kind", "name", "area_m2", "count", "share", "contact_name",
                    "id_number", "phone"])
        for r in rows:
            for c in r["contacts"] or [{}]:
                w.writerow([r["building_id"], r["owner_id"], r["kind"], r["name"], r["area_m2"], r["count"],
                            round(r["share"], 6) if r["share"] is not None else "", c.get("contact_name", ""),
                            c.get("id_number", ""), c.get("phone", "")])
        _write(buf.getvalue(), out)
    err.print(f"{len(rows)} owner rows, personal fields {'NOT masked' if unmasked else 'masked'}")


# --- contacts -----------------------------------------------------------------------------------------------------
@contacts_app.command("import")
def contacts_import(
    path: Path = typer.Argument(..., help="CSV with owner_id,contact_name,id_number,phone"),
    site: str | None = typer.Option(None, help="site file or folder (owner ids are checked against it)"),
) -> None:
    """Replace the contact persons of the owners in a CSV (all rows or none); values are never printed.

    Example: retrofit contacts import contacts.csv
    """
    from api import pii
    from retrofit.cli import console, fail

    s = settings_or_exit()
    st = _site(s, site)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror}", code=2) from None
    engine = _engine(s)
    try:
        n = pii.import_contacts(engine, text, {o.owner for b in st.buildings for o in b.owners}, str(path))
    except pii.ContactError as exc:
        raise fail(str(exc), code=2) from None
    from api.evidence import append_audit

    append_audit(engine, os.environ.get("USER", "cli"), "import", "owner_contacts", path.name, None, {"rows": n})
    console.print(f"imported {n} contact(s) from {path}")


# --- evidence -----------------------------------------------------------------------------------------------------
@evidence_app.command("keygen")
def evidence_keygen(
    username: str = typer.Argument(..., help="the dashboard user who will sign"),
    out: Path = typer.Option(..., "--out", help="where to write the encrypted private key (mode 0600)"),
) -> None:
    """Make an Ed25519 key pair for a user: the public key is registered, the private key written encrypted with
    the passphrase in RETROFIT_KEY_PASSPHRASE.

    Example: RETROFIT_KEY_PASSPHRASE=... retrofit evidence keygen dora --out ~/.retrofit/dora.pem
    """
    from api.evidence import PASSPHRASE_ENV, EvidenceError, generate_key
    from retrofit.cli import console, fail

    try:
        fp = generate_key(_engine(settings_or_exit()), username, out, os.environ.get(PASSPHRASE_ENV))
    except EvidenceError as exc:
        raise fail(str(exc), code=2) from None
    console.print(f"key {fp} registered for {username}; private key in {out}")


@evidence_app.command("sign")
def evidence_sign(
    user: str = typer.Option(..., "--user", help="the approving dashboard user"),
    document: int | None = typer.Option(None, "--document", help="document id to sign"),
    file: Path | None = typer.Option(None, "--file", help="the document's file: its SHA-256 must match"),
    application: str | None = typer.Option(None, "--application", help="subsidy application id to sign"),
    key_file: Path | None = typer.Option(None, "--key-file", help="encrypted key file (else RETROFIT_SIGNING_KEY)"),
) -> None:
    """Sign a document (milestone evidence) or a subsidy application as the approving user.

    Example: retrofit evidence sign --user dora --document 3 --file audit.pdf --key-file dora.pem
    """
    from api.evidence import EvidenceError, load_private_key, sign_application, sign_document
    from retrofit.cli import console, fail

    if (document is None) == (application is None):
        raise fail("give exactly one of --document or --application", code=2)
    engine = _engine(settings_or_exit())
    try:
        key = load_private_key(key_file)
        sig = (sign_document(engine, document, user, key, file) if document is not None
               else sign_application(engine, application or "", user, key))
    except EvidenceError as exc:
        raise fail(str(exc), code=2) from None
    console.print(f"signed {sig.subject} {sig.subject_id} as {user} (signature {sig.id})")


@evidence_app.command("seal")
def evidence_seal(
    sign_as: str | None = typer.Option(None, "--sign-as", help="also sign a checkpoint of the log's head"),
    key_file: Path | None = typer.Option(None, "--key-file", help="encrypted key file (else RETROFIT_SIGNING_KEY)"),
) -> None:
    """Chain every audit row written since the last seal; with --sign-as, sign the head (detects truncation).

    Example: retrofit evidence seal --sign-as dora --key-file dora.pem
    """
    from api.evidence import EvidenceError, checkpoint, load_private_key, seal
    from buildings.records.base import session_factory
    from retrofit.cli import console, fail

    engine = _engine(settings_or_exit())
    with session_factory(engine).begin() as s:
        n = seal(s)
    console.print(f"sealed {n} audit row(s)")
    if sign_as:
        try:
            sig = checkpoint(engine, sign_as, load_private_key(key_file))
        except EvidenceError as exc:
            raise fail(str(exc), code=2) from None
        if sig is not None:
            console.print(f"checkpoint at audit row {sig.subject_id} signed by {sign_as}")


@evidence_app.command("verify")
def evidence_verify(as_json: bool = typer.Option(False, "--json", help="print the report as JSON")) -> None:
    """Check every signature against the records as they are now, every signed file's SHA-256, and the audit
    log's hash chain. Exits 1 and names each problem (what and where) when anything was changed or deleted.

    Example: retrofit evidence verify
    """
    from api.evidence import verify_all
    from retrofit.cli import console, err

    report = verify_all(_engine(settings_or_exit()))
    if as_json:
        typer.echo(json.dumps({"ok": report.ok, "problems": report.problems, "notes": report.notes,
                               "checked": report.checked}, ensure_ascii=False, indent=1))
    else:
        from rich.markup import escape

        for p in report.problems:
            err.print(f"[red]FAIL[/] {escape(p)}", highlight=False, soft_wrap=True)
        for n in report.notes:
            console.print(f"note: {n}", highlight=False, soft_wrap=True, markup=False)
        checked = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.checked.items())
        (console if report.ok else err).print(("OK: " if report.ok else f"{len(report.problems)} problem(s); ")
                                              + f"checked {checked}", highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    from retrofit.cmd_dashboard import users_app

    app.command("api")(api)
    users_app.add_typer(token_app, name="token")
    app.add_typer(catalogue_app, name="catalogue")
    app.add_typer(export_app, name="export")
    app.add_typer(evidence_app, name="evidence")
    app.add_typer(contacts_app, name="contacts")
