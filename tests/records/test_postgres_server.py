"""The private PostgreSQL cluster the records tests use: its own initdb in a temp dir, loopback only, its unix
socket in that dir, never root (CI runs as root: the server runs as an unprivileged user), gone after stop."""

from __future__ import annotations

import os
import subprocess

from retrofit.devservers import PostgresServer, start_postgres


def test_private_cluster(postgres: PostgresServer) -> None:
    assert postgres.running
    assert postgres.admin("SHOW listen_addresses") == [("127.0.0.1",)]
    assert postgres.admin("SHOW port") == [(str(postgres.port),)]
    assert postgres.admin("SHOW data_directory") == [(str(postgres.workdir / "data"),)]
    assert postgres.admin("SHOW unix_socket_directories") == [(str(postgres.workdir),)]
    assert postgres.admin("SHOW server_encoding") == [("UTF8",)]
    uid = os.stat(f"/proc/{postgres.proc.pid}").st_uid
    assert uid != 0 and (os.geteuid() == 0 or uid == os.geteuid())
    # the real client over the unix socket in the temp dir reaches the same server
    out = subprocess.run(["psql", "-h", str(postgres.workdir), "-p", str(postgres.port), "-U", "postgres", "-X",
                          "-At", "-c", "SELECT current_setting('port')"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == str(postgres.port), out.stderr


def test_a_second_cluster_starts_and_is_removed_on_stop() -> None:
    server = start_postgres()
    try:
        assert server.admin("SELECT 1") == [(1,)] and (server.workdir / "data" / "postmaster.pid").exists()
    finally:
        server.stop()
    assert not server.running and not server.workdir.exists()
