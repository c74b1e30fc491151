"""InfluxDB specifics against a real influxd: version, retention policies, CQ, downsampling, tags, errors, auth."""

from __future__ import annotations

import logging
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrofit.devservers import ServerProcess, free_port, start_influxd
from retrofit.settings import Settings
from telemetry import open_store
from telemetry.influx import InfluxStore, strip_credentials
from telemetry.reading import Quality, Reading
from telemetry.store import StoreAuthError, StoreError, StoreRejected, StoreUnavailable
from tests.telemetry.helpers import T0


@pytest.fixture()
def influx(influxd: ServerProcess, request: pytest.FixtureRequest) -> Iterator[InfluxStore]:
    db = "tel_ix_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:40]
    s = InfluxStore(f"http://127.0.0.1:{influxd.port}", database=db)
    yield s
    s.close()


def influx_cli(port: int, db: str, q: str) -> str:
    """The Debian `influx` CLI: an independent reader of what we wrote."""
    return subprocess.run(["influx", "-host", "127.0.0.1", "-port", str(port), "-database", db, "-format", "csv",
                           "-execute", q], capture_output=True, text=True, timeout=30, check=True).stdout


def test_version_retention_policies_and_cq(influx: InfluxStore, influxd: ServerProcess) -> None:
    assert influx.server_version.startswith("1.6")
    assert influx.continuous_queries
    rps = influx.query(f'SHOW RETENTION POLICIES ON "{influx.database}"', db=False)[0]["series"][0]
    by_name = {row[0]: dict(zip(rps["columns"], row, strict=True)) for row in rps["values"]}
    assert by_name["raw"]["default"] is True and by_name["raw"]["duration"] == "9600h0m0s"
    assert by_name["downsampled"]["duration"] == "87600h0m0s"
    cqs = influx.query("SHOW CONTINUOUS QUERIES", db=False)[0]["series"]
    mine = next(s for s in cqs if s["name"] == influx.database)
    assert mine["values"][0][0] == "retrofit_1h" and "readings_1h" in mine["values"][0][1]
    # opening again finds everything in place and changes nothing
    InfluxStore(influx.url, database=influx.database).close()
    influx.write([Reading("b/p", T0, 1.5)])
    out = influx_cli(influxd.port, influx.database, 'SELECT "value", "quality" FROM "raw"."readings"')
    assert out.strip().splitlines()[1].endswith(f"{int(T0 * 1e9)},1.5,good")


@pytest.mark.parametrize("server_side", [True, False])
def test_downsample_hourly(influx: InfluxStore, server_side: bool) -> None:
    # server_side: SELECT ... INTO (1.x); otherwise our own job, as on servers without CQs
    influx.continuous_queries = server_side
    influx.write([Reading("b/p", T0 + k * 600, float(k)) for k in range(12)]
                 + [Reading("b/p", T0 + 30, 500.0, Quality.OUT_OF_RANGE)])
    assert influx.downsample(T0, T0 + 7200) == 2
    rows = influx.query('SELECT "mean", "min", "max", "last", "count" FROM "downsampled"."readings_1h" '
                        'WHERE "point" = \'b/p\'')[0]["series"][0]["values"]
    assert rows == [[int(T0 * 1000), 2.5, 0, 5, 5, 6], [int(T0 * 1000) + 3600000, 8.5, 6, 11, 11, 6]]
    assert influx.downsample(T0, T0 + 7200) == 2  # idempotent: same rows again


def test_tags_from_a_resolver_and_second_precision(influxd: ServerProcess) -> None:
    tags = {"b/kwh": {"equipment": "main-meter", "brick": "Electric_Energy_Sensor", "subitem": "total"}}
    s = InfluxStore(f"http://127.0.0.1:{influxd.port}", database="tel_ix_tags", precision="s",
                    tag_resolver=lambda k: tags.get(k, {}))
    s.write([Reading("b/kwh", T0 + 0.4, 10.0), Reading("b/other", T0, 1.0)])
    keys = s.query('SHOW TAG KEYS FROM "readings"')[0]["series"][0]["values"]
    assert sorted(k[0] for k in keys) == ["brick", "building", "equipment", "point", "subitem"]
    vals = s.query('SHOW TAG VALUES FROM "readings" WITH KEY = "subitem"')[0]["series"][0]["values"]
    assert vals == [["subitem", "total"]]
    assert s.raw("b/kwh", T0 - 1, T0 + 1)[0].ts == T0  # second precision rounds
    s.close()


def test_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="not reachable.*RETROFIT_INFLUX_URL"):
        InfluxStore(f"http://127.0.0.1:{free_port()}", timeout_s=2)


def test_malformed_batch_is_rejected_with_the_server_message(influx: InfluxStore) -> None:
    influx.write_lines(f'readings,building=b,point=b/x value=1i,quality="good" {int(T0 * 1000)}')  # an int field
    with pytest.raises(StoreRejected, match="HTTP 400.*field type conflict"):
        influx.write([Reading("b/x", T0 + 1, 2.5)])


def test_credentials_in_the_url_are_split_off() -> None:
    assert strip_credentials("https://u:pw@h:8086/") == ("https://h:8086/", "u", "pw")
    assert strip_credentials("http://h:8086") == ("http://h:8086", None, None)


@pytest.fixture(scope="module")
def influxd_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_influxd(tmp_path_factory.mktemp("influxd-auth"), auth=("admin", "right-admin-pw"))
    yield server
    server.stop()


SECRET = "tok-9f8e7d6c5b4a-do-not-leak"


def _no_secret_anywhere(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in text
    assert SECRET not in caplog.text
    assert SECRET not in repr(exc.args)


def test_wrong_token_is_a_clear_auth_error_without_the_token(influxd_auth: ServerProcess,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreAuthError, match="refused the credentials.*RETROFIT_INFLUX_TOKEN") as info:
        InfluxStore(f"http://127.0.0.1:{influxd_auth.port}", token=SECRET)
    _no_secret_anywhere(info.value, caplog)


def test_wrong_password_via_settings(influxd_auth: ServerProcess, caplog: pytest.LogCaptureFixture,
                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("RETROFIT_INFLUX_URL", f"http://admin:{SECRET}@127.0.0.1:{influxd_auth.port}")
    monkeypatch.setenv("RETROFIT_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    with pytest.raises(StoreAuthError, match="RETROFIT_INFLUX_USERNAME / RETROFIT_INFLUX_PASSWORD") as info:
        open_store(Settings())
    _no_secret_anywhere(info.value, caplog)


def test_right_password_works(influxd_auth: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    s = InfluxStore(f"http://127.0.0.1:{influxd_auth.port}", database="authed", username="admin",
                    password="right-admin-pw")
    s.write([Reading("b/p", T0, 3.0)])
    assert s.latest(["b/p"]) == {"b/p": Reading("b/p", T0, 3.0)}
    s.close()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN) and its key, made here with `cryptography`."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_with_verification(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server = start_influxd(tmp_path / "influxd", tls=(cert, key))
    try:
        url = f"https://127.0.0.1:{server.port}"
        with pytest.raises(StoreUnavailable, match="TLS failed.*RETROFIT_INFLUX_VERIFY_TLS"):
            InfluxStore(url, database="tls")  # self-signed: not trusted by the system CAs
        with InfluxStore(url, database="tls", verify_tls=str(cert)) as s:  # trusted when we name the CA
            s.write([Reading("b/p", T0, 4.5)])
            assert s.latest(["b/p"])["b/p"].value == 4.5
        with InfluxStore(url, database="tls", verify_tls=False) as s:
            assert s.count() == 1
    finally:
        server.stop()


def test_downsample_job_rolls_up_recent_hours_without_cqs(influx: InfluxStore) -> None:
    import time

    from telemetry.influx import DownsampleJob

    influx.continuous_queries = False  # as on InfluxDB 2.x/3.x
    hour = time.time() // 3600 * 3600
    influx.write([Reading("b/p", hour - 3600 + k * 60, float(k)) for k in range(60)])
    job = DownsampleJob(influx, every_s=0.2)
    job.start()
    deadline = time.monotonic() + 20
    rows: list = []
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        res = influx.query('SELECT "mean", "count" FROM "downsampled"."readings_1h"')[0]
        rows = res.get("series", [{}])[0].get("values", [])
    job.stop()
    job.join(timeout=10)
    assert rows == [[int((hour - 3600) * 1000), 29.5, 60]]


def test_open_store_with_a_site_tags_equipment_brick_subitem(influxd: ServerProcess, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import textwrap

    from buildings.site import load_site
    from tests.telemetry.test_queries import SITE

    (tmp_path / "qb.yaml").write_text(textwrap.dedent(SITE), encoding="utf-8")
    site = load_site(str(tmp_path / "qb.yaml"))
    (tmp_path / "retrofit.toml").write_text("")
    monkeypatch.setenv("RETROFIT_CONFIG", str(tmp_path / "retrofit.toml"))
    monkeypatch.setenv("RETROFIT_INFLUX_URL", f"http://127.0.0.1:{influxd.port}")
    monkeypatch.setenv("RETROFIT_INFLUX_DATABASE", "tel_ix_site")
    store = open_store(Settings(), site=site)
    store.write([Reading("qb/main-kwh", T0, 1.0), Reading("qb/sat", T0, 20.0)])
    res = store.query('SELECT * FROM "readings" GROUP BY *')[0]["series"]  # type: ignore[attr-defined]
    tags = {s["tags"]["point"]: s["tags"] for s in res}
    assert tags["qb/main-kwh"] == {"brick": "Electric_Energy_Sensor", "building": "qb", "equipment": "main",
                                   "point": "qb/main-kwh", "subitem": "total"}
    assert tags["qb/sat"]["subitem"] == "" and tags["qb/sat"]["equipment"] == "ahu1"
    store.close()


def test_a_non_admin_user_writes_to_what_an_admin_created(influxd_auth: ServerProcess,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{influxd_auth.port}"
    with InfluxStore(url, database="limited", username="admin", password="right-admin-pw") as admin:
        admin.query("CREATE USER \"writer\" WITH PASSWORD 'writer-pw'", db=False)
        admin.query('GRANT ALL ON "limited" TO "writer"', db=False)
    caplog.set_level(logging.WARNING)
    with InfluxStore(url, database="limited", username="writer", password="writer-pw") as s:
        s.write([Reading("b/p", T0, 1.0)])
        assert s.count() == 1 and s._rp == "raw"
    assert "may not create or check" in caplog.text and "writer-pw" not in caplog.text


def test_retention_must_be_a_duration(influxd: ServerProcess) -> None:
    with pytest.raises(StoreError, match="not an InfluxDB duration"):
        InfluxStore(f"http://127.0.0.1:{influxd.port}", raw_retention="400 days; DROP DATABASE x")
