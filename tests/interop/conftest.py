"""Fixtures for the interoperability tests: protocol servers the project did not write, on loopback.

- pyModbusTCP's ``ModbusServer`` (PyPI, pure Python, its own framing and data bank; not pymodbus);
- a Modbus TCP server on libmodbus (Debian libmodbus-dev), ``libmodbus_server.c`` beside this file, compiled
  once per session with gcc;
- a BACnet/IP device on ``@bacnet-js/client`` (npm, pinned by ``bacnet_js/package-lock.json``, installed by
  ``npm ci`` in ``.ci/run``), ``bacnet_js/device.js``, run under Node.js;
- rusty-bacnet's ``BACnetServer`` (PyPI, Rust) for a device that segments (started in test_bacnet_rusty.py).

None of them skips: a missing compiler, library or npm install is a failing fixture, so CI cannot pass
without talking to them. Register images are encoded here with ``struct`` (``registers_for``), independently
of ``buildings.modbus_codec``, so the collector's decoding is checked against an outside reading of the
convention rather than against itself.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from retrofit.devservers import free_port, free_udp_port

HERE = Path(__file__).resolve().parent
BACNET_JS = HERE / "bacnet_js"
FMT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}


def registers_for(type_: str, byte_order: str, word_order: str, raw: float | int | str,
                  length: int | None = None) -> list[int]:
    """The register words a device holds for a raw value, from the convention in docs/site-files.md:
    big word order = most significant register first; little byte order = the two bytes of each register
    swapped. Strings: two characters a register, NUL padded, word order not applied."""
    if type_ == "string":
        assert isinstance(raw, str) and length is not None
        data = raw.encode().ljust(length * 2, b"\0")
        words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    else:
        data = struct.pack(">" + FMT[type_], raw)
        words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
        if word_order == "little":
            words.reverse()
    if byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words


@dataclass
class OutsideServer:
    """A running Modbus server the project did not write: where it listens and what it was asked."""

    name: str
    port: int
    stop: Callable[[], None]
    requests: list[str] = field(default_factory=list)  # libmodbus only: "fc start count ok|exc N"


def _pymodbustcp(image: dict[str, dict[int, int]]) -> OutsideServer:
    from pyModbusTCP.server import DataBank, ModbusServer

    bank = DataBank()
    for address, word in image.get("h", {}).items():
        bank.set_holding_registers(address, [word])
    for address, word in image.get("i", {}).items():
        bank.set_input_registers(address, [word])
    for address, bit in image.get("c", {}).items():
        bank.set_coils(address, [bool(bit)])
    for address, bit in image.get("d", {}).items():
        bank.set_discrete_inputs(address, [bool(bit)])
    port = free_port()
    server = ModbusServer(host="127.0.0.1", port=port, no_block=True, data_bank=bank)
    server.start()
    return OutsideServer("pyModbusTCP", port, server.stop)


@pytest.fixture(scope="session")
def libmodbus_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """libmodbus_server.c compiled against Debian's libmodbus (fails, never skips, when it cannot be built)."""
    out = tmp_path_factory.mktemp("libmodbus") / "libmodbus_server"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmodbus"], capture_output=True, text=True)
    assert flags.returncode == 0, f"libmodbus-dev is missing (pkg-config: {flags.stderr.strip()})"
    cc = subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-o", str(out), str(HERE / "libmodbus_server.c"),
                         *flags.stdout.split()], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    return out


def start_libmodbus(binary: Path, image: dict[str, dict[int, int]], extra: list[str] | None = None,
                    workdir: Path | None = None) -> OutsideServer:
    """Start the libmodbus server on a free port with a register image (and quirk lines such as
    ``hole 5`` / ``max 16 2``); its request log is collected on a thread."""
    lines = [f"{kind} {a} {v}" for kind, table in image.items() for a, v in sorted(table.items())]
    lines += extra or []
    mapfile = (workdir or binary.parent) / f"map-{time.monotonic_ns()}.txt"
    mapfile.write_text("\n".join(lines) + "\n")
    port = free_port()
    proc = subprocess.Popen([str(binary), str(port), str(mapfile)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    assert first == "ready", f"libmodbus server did not start: {first!r} {proc.stderr.read() if proc.stderr else ''}"
    server = OutsideServer("libmodbus", port, lambda: None)

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            server.requests.append(line.strip())

    threading.Thread(target=pump, daemon=True).start()

    def stop() -> None:
        proc.terminate()
        proc.wait(10)

    server.stop = stop
    return server


@pytest.fixture(params=["pyModbusTCP", "libmodbus"])
def outside_modbus(request: pytest.FixtureRequest,
                   libmodbus_binary: Path) -> Iterator[Callable[..., OutsideServer]]:
    """A factory: ``outside_modbus(image, extra=None)`` starts the parametrised outside server with that image."""
    started: list[OutsideServer] = []

    def start(image: dict[str, dict[int, int]], extra: list[str] | None = None) -> OutsideServer:
        if request.param == "pyModbusTCP":
            assert not extra, "quirk lines are for the libmodbus server"
            server = _pymodbustcp(image)
        else:
            server = start_libmodbus(libmodbus_binary, image, extra)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


# --- BACnet: a device on @bacnet-js/client ---------------------------------------------------------------

@dataclass
class JsDevice:
    """A BACnet/IP device served by @bacnet-js/client under Node.js; ``send`` changes it while it runs."""

    port: int
    instance: int
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def send(self, command: dict[str, Any]) -> None:
        """A control line on the device's stdin (e.g. drop or add an object); waits for its "ok"."""
        assert self.proc.stdin is not None
        n = len(self.log)
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(line.startswith("ok ") for line in self.log[n:]):
                return
            time.sleep(0.02)
        raise AssertionError(f"bacnet-js device did not acknowledge {command}: {self.log[n:]}")

    def requests(self, kind: str) -> int:
        """How many requests of a kind ("rp", "rpm", "whois") the device has answered or refused."""
        return sum(1 for line in self.log if line.split(" ", 1)[0] == kind)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="session")
def bacnet_js_ready() -> Path:
    """The pinned @bacnet-js/client must be installed (``.ci/run`` runs ``npm ci`` in tests/interop/bacnet_js)."""
    node = shutil.which("node")
    assert node, "Node.js is missing: the BACnet interoperability tests need it (Debian package nodejs)"
    lib = BACNET_JS / "node_modules" / "@bacnet-js" / "client" / "package.json"
    if not lib.exists():  # a developer's fresh clone: install the pinned lock file, as CI does
        with open(BACNET_JS / ".npm-ci.lock", "w") as lock:  # one xdist worker installs, the others wait
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not lib.exists():
                subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BACNET_JS, check=True,
                               capture_output=True, timeout=300)
    assert lib.exists(), "npm ci in tests/interop/bacnet_js did not install @bacnet-js/client"
    return BACNET_JS / "device.js"


@pytest.fixture()
def bacnet_js(bacnet_js_ready: Path) -> Iterator[Callable[..., JsDevice]]:
    """A factory: ``bacnet_js(config)`` starts a device (see device.js for the config keys) on a free port."""
    started: list[JsDevice] = []

    def start(config: dict[str, Any]) -> JsDevice:
        port = free_udp_port()
        cfg = {"port": port, **config}
        proc = subprocess.Popen(["node", str(bacnet_js_ready), json.dumps(cfg)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=BACNET_JS)
        dev = JsDevice(port, int(cfg["instance"]), proc)
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first == "ready", f"bacnet-js device did not start: {first!r} {proc.stdout.read()[:2000]}"

        def pump() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                dev.log.append(line.strip())

        threading.Thread(target=pump, daemon=True).start()
        started.append(dev)
        return dev

    yield start
    for d in started:
        d.stop()
