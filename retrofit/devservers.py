"""Throwaway real servers (influxd, mosquitto, PostgreSQL) on free loopback ports in temp dirs.

Used by the test fixtures, the benchmarks and `retrofit demo`. Each server is a real process from the Debian
package, started with a config that binds only 127.0.0.1, waited for until it answers, and stopped by PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

_GIVEN: dict[int, set[int]] = {socket.SOCK_STREAM: set(), socket.SOCK_DGRAM: set()}


def _free(kind: int) -> int:
    """A port of ``kind`` on 127.0.0.1 that nothing uses right now and that this process has not handed out
    before: the kernel may return a just-released port again, and two servers a test set up one after the other
    would then be given the same port."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN[kind]:
            _GIVEN[kind].add(port)
            return port
    raise OSError("no free loopback port that was not handed out already")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (and not handed out before by this process)."""
    return _free(socket.SOCK_STREAM)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now (for BACnet devices)."""
    return _free(socket.SOCK_DGRAM)


def wait_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Block until a TCP port accepts connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


@dataclass
class ServerProcess:
    """A running server: its process, port, temp dir; stop() ends it and removes the dir."""

    name: str
    argv: list[str]
    port: int
    workdir: Path
    proc: subprocess.Popen | None = None
    stop_signal: int = signal.SIGTERM
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / f"{self.name}.log"

    def start(self) -> ServerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - held by the child for its lifetime
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True)
        log.close()
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop(remove=False)
            raise RuntimeError(f"{self.name} did not start; log:\n{self.log_text()[-2000:]}") from None
        return self

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, remove: bool = True, kill: bool = False) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s); keep the data dir unless remove."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else self.stop_signal)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port with the same data (for outage tests)."""
        self.stop(remove=False)
        self.start()


def influxd_available() -> bool:
    return shutil.which("influxd") is not None


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )


def start_influxd(workdir: Path | None = None, auth: tuple[str, str] | None = None,
                  tls: tuple[Path, Path] | None = None) -> ServerProcess:
    """Start a real InfluxDB 1.x on a free loopback port with its data in a temp dir.

    auth=(user, password) enables authentication and creates that admin user (for wrong-credential tests).
    tls=(certificate PEM, private key PEM) serves HTTPS instead of HTTP.
    """
    binary = shutil.which("influxd") or "/usr/bin/influxd"
    workdir = Path(workdir or tempfile.mkdtemp(prefix="retrofit-influx-"))
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, rpc_port = free_port(), free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
  cache-max-memory-size = "256m"
[coordinator]
  log-queries-after = "0s"
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {"true" if auth else "false"}
  https-enabled = {"true" if tls else "false"}
  https-certificate = "{tls[0] if tls else ''}"
  https-private-key = "{tls[1] if tls else ''}"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = true
  run-interval = "1s"
[logging]
  level = "warn"
[[udp]]
  enabled = false
""")
    server = ServerProcess("influxd", [binary, "run", "-config", str(conf)], http_port, workdir).start()
    if auth:
        _influx_create_admin(server, *auth)
    return server


def _influx_create_admin(server: ServerProcess, user: str, password: str) -> None:
    """Create the first admin user (InfluxDB allows this one unauthenticated request with auth enabled)."""
    import json
    import urllib.parse
    import urllib.request

    q = f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
    data = urllib.parse.urlencode({"q": q}).encode()
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/query", data=data, timeout=5) as resp:
                body = json.loads(resp.read())
            if any("error" in r for r in body.get("results", [])):
                raise RuntimeError(f"influxd: could not create the admin user: {body}")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_mosquitto(workdir: Path | None = None, port: int | None = None,
                    persistence: bool = True) -> ServerProcess:
    """Start a real Mosquitto 2 broker on a free loopback port (anonymous, loopback only)."""
    binary = mosquitto_binary() or "/usr/sbin/mosquitto"
    workdir = Path(workdir or tempfile.mkdtemp(prefix="retrofit-mqtt-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = workdir / "mosquitto.conf"
    # Started as root, Mosquitto drops to user `mosquitto`, which cannot enter a 0700 temp dir (pytest's), and
    # then silently loses its persistence. A throwaway test broker keeps the user that started it instead.
    user = pwd.getpwuid(os.geteuid()).pw_name
    conf.write_text(
        f"user {user}\n"
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        f"persistence {'true' if persistence else 'false'}\n"
        f"persistence_location {workdir}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 1000000\n"
        "log_dest stdout\n"
        "log_type error\nlog_type warning\n"
    )
    return ServerProcess("mosquitto", [binary, "-c", str(conf)], port, workdir).start()


# --- PostgreSQL ------------------------------------------------------------------------------------------------
def postgres_bindir() -> Path | None:
    """Where PostgreSQL's server programs are (Debian keeps them off PATH in /usr/lib/postgresql/N/bin)."""
    if os.environ.get("RETROFIT_PG_BINDIR"):
        return Path(os.environ["RETROFIT_PG_BINDIR"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
                   if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _unprivileged() -> tuple[list[str], int, int] | None:
    """When we are root (PostgreSQL refuses to run as root): a command prefix that runs a program as an
    unprivileged user, with its uid and gid. ``setpriv`` execs in place, so the PID we hold is the server's."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return (["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"],
                pw.pw_uid, pw.pw_gid)
    raise RuntimeError("running as root and there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL")


@dataclass
class PostgresServer(ServerProcess):
    """A private PostgreSQL cluster: superuser ``postgres`` (trust on 127.0.0.1 only), socket in its temp dir."""

    superuser: str = "postgres"

    def url(self, database: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        auth = user or self.superuser
        if password:
            from urllib.parse import quote

            auth += ":" + quote(password, safe="")
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser outside a transaction (CREATE/DROP DATABASE, roles)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.superuser, dbname=database,
                             autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def start(self) -> PostgresServer:
        super().start()
        _wait_accepting(self)
        return self


def _wait_accepting(server: PostgresServer, timeout: float = 30.0) -> None:
    """The port opens before recovery ends ("the database system is starting up"): wait for a real session."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            server.admin("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline or not server.running:
                server.stop(remove=False)
                raise RuntimeError(f"postgres did not accept sessions; log:\n{server.log_text()[-2000:]}") from None
            time.sleep(0.1)


def start_postgres(workdir: Path | None = None) -> PostgresServer:
    """Start a private PostgreSQL cluster (initdb in a temp dir, a free loopback port, its unix socket in the
    temp dir, no system service). As root it runs as user ``postgres`` (or ``nobody``), which owns the dir."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server programs not found: install Debian's postgresql "
                           "(or set RETROFIT_PG_BINDIR to the folder holding initdb and postgres)")
    # a fresh dir under /tmp: pytest's own temp dirs are 0700 root and the server user could not enter them
    workdir = Path(workdir or tempfile.mkdtemp(prefix="retrofit-pg-"))
    workdir.mkdir(parents=True, exist_ok=True)
    as_user = _unprivileged()
    prefix = as_user[0] if as_user else []
    log = workdir / "postgres.log"
    log.touch()
    if as_user:
        for path in (workdir, log):
            os.chown(path, as_user[1], as_user[2])
        workdir.chmod(0o700)
    data = workdir / "data"
    init = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                           "-E", "UTF8", "--locale=C", "--no-sync"], capture_output=True, text=True, cwd=workdir)
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
    port = free_port()
    settings = {"listen_addresses": "127.0.0.1", "port": str(port), "unix_socket_directories": str(workdir),
                "max_connections": "200", "shared_buffers": "32MB", "fsync": "off", "synchronous_commit": "off",
                "full_page_writes": "off", "logging_collector": "off", "log_min_messages": "warning"}
    argv = [*prefix, str(bindir / "postgres"), "-D", str(data)]
    for k, v in settings.items():
        argv += ["-c", f"{k}={v}"]
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to disconnect)
    return PostgresServer("postgres", argv, port, workdir, stop_signal=signal.SIGINT).start()
