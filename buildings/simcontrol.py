"""The simulator's control protocol, client side: one JSON line over TCP on 127.0.0.1 per request.

A running `retrofit simulate` writes a control file (mode 0600: only its user can read the token) with its host,
port, token and pid. A client reads the file, connects to the port, sends one request line with the token and
reads one answer line: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``. Requests: ``inject`` (kind,
target, duration_s, params), ``clear`` (id or target), ``list``, ``endpoints``.

The server is simulators/serve.ControlServer. This client is used by `retrofit simulate fault ...` and by the
dashboard's simulator page; it lives in ``buildings`` because both the simulators and the dashboard may import
it (and neither may import the other).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


class ControlError(ValueError):
    """A control request that cannot be done; the message says why and what to do."""


def read_control_file(control_file: Path | str) -> dict[str, Any]:
    """The host, port, token and pid a running simulator wrote; ControlError when there is none to use."""
    path = Path(control_file)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ControlError(f"no running simulator: {path} does not exist. Start `retrofit simulate` first (or pass "
                           "the --control-file it uses)") from None
    except PermissionError:
        raise ControlError(f"cannot read {path}: only the user running the simulator may control it") from None
    except (OSError, ValueError):
        raise ControlError(f"{path} is not a simulator control file") from None
    if not isinstance(data, dict) or not {"port", "token"} <= set(data):
        raise ControlError(f"{path} is not a simulator control file")
    if data.get("host") != LOOPBACK:
        raise ControlError(f"{path}: the control endpoint must be on {LOOPBACK}")
    return data


def control_request(control_file: Path | str, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the simulator of ``control_file`` and return its answer (``ok`` true or false)."""
    data = read_control_file(control_file)
    try:
        with socket.create_connection((LOOPBACK, int(data["port"])), timeout=timeout) as sock:
            sock.sendall((json.dumps({**request, "token": data["token"]}) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except (OSError, ValueError) as exc:
        raise ControlError(f"the simulator in {control_file} (pid {data.get('pid')}) does not answer: {exc}. "
                           "Is it still running?") from None
    try:
        answer = json.loads(buf)
    except ValueError:
        raise ControlError("the simulator sent an unreadable answer") from None
    if not isinstance(answer, dict):
        raise ControlError("the simulator sent an unreadable answer")
    return answer
