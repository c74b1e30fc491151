"""Start `retrofit simulate` as a real process for a test and read the endpoints it serves.

Several end-to-end tests (soak, collectors' commands, scale-out, the simulate command itself) need the sample
district served on free ports by a separate `retrofit simulate --free-ports --json` process, and the same site
moved to the ports it picked, so that the processes under test (collectors, ingest, rules workers) can reach
it. Each used to carry its own copy of the start-up: read the JSON lines up to `"ready"`, collect the
endpoints, build `Site.with_ports(...)`, drain stdout, and stop it with SIGTERM. This module is that one copy.

The simulator prints one JSON line per endpoint (`{"protocol", "building", "device", "port", ...}`) and then
`{"ready": true, ...}` on stdout; its stderr goes to a log file, whose tail is in the error when it does not
become ready. stdout is read by a background thread, so the timeout holds even when the process hangs silently
and the pipe never fills up after "ready".
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildings.site import Site, load_site

ROOT = Path(__file__).resolve().parents[1]
RETROFIT = [sys.executable, "-m", "retrofit.cli"]


def terminate(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM, wait up to `timeout` s, then SIGKILL; returns the exit code (nothing if it already ended)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def log_tail(path: Path, chars: int = 3000) -> str:
    """The end of a log, for a failure message (CI keeps no temp dirs)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as e:
        return f"({e})"


@dataclass
class RunningSimulator:
    """A `retrofit simulate` process that has said it is ready."""

    proc: subprocess.Popen
    endpoints: list[dict[str, Any]]  # every endpoint line, in order (Modbus, BACnet and MQTT)
    site: Site  # the site moved to the simulator's Modbus/BACnet ports
    log: Path  # the simulator's stderr
    lines: list[str]  # the raw stdout lines read up to and including the ready line
    ready: dict[str, Any]  # the ready line

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (then SIGKILL after `timeout` s); the exit code. Does nothing once it has ended."""
        return terminate(self.proc, timeout)


def start_simulate(site_path: str | os.PathLike, *, extra_args: Sequence[str] = (),
                   env: Mapping[str, str] | None = None, log: Path, timeout: float = 90,
                   site: Site | None = None) -> RunningSimulator:
    """Run `retrofit simulate --site site_path --free-ports --json *extra_args` and wait until it is ready.

    `env` is the whole environment (None: this process's); stderr is appended to `log`. `site` is the site at
    `site_path` when the caller has already loaded it. Raises AssertionError with the log's tail when the
    simulator exits or is not ready within `timeout` s (it is killed then).
    """
    with open(log, "ab") as err:
        proc = subprocess.Popen([*RETROFIT, "simulate", "--site", str(site_path), "--free-ports", "--json",
                                 *extra_args], cwd=ROOT, env=None if env is None else dict(env),
                                stdout=subprocess.PIPE, stderr=err, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    done = threading.Event()  # set once ready: what comes after is drained and dropped

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if not done.is_set():
                lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="simulate-stdout", daemon=True).start()
    read: list[str] = []
    ready: dict[str, Any] | None = None
    deadline = time.monotonic() + timeout
    while ready is None:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        read.append(line)
        doc = _json_object(line)
        if doc is not None and doc.get("ready"):
            ready = doc
    done.set()
    if ready is None:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"simulator did not become ready within {timeout:.0f} s (exit code {proc.returncode}); "
                             f"{log}:\n{log_tail(log)}")
    endpoints = [doc for doc in map(_json_object, read) if doc is not None and "protocol" in doc]
    sample = site if site is not None else load_site(str(site_path))
    moved: dict[tuple[str, int], int] = {}
    for ep in endpoints:
        if ep["protocol"] in ("modbus", "bacnet"):
            _, dev = sample.devices[f"{ep['building']}/{ep['device']}"]
            moved[(dev.host, dev.port or dev.default_port)] = ep["port"]
    return RunningSimulator(proc=proc, endpoints=endpoints, site=sample.with_ports(moved), log=log, lines=read,
                            ready=ready)


def _json_object(line: str) -> dict[str, Any] | None:
    """The JSON object on one line, or None (the caller can assert on the raw lines where that matters)."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
