"""Run every device of a site over its real protocols, with a loopback control endpoint for live faults.

``Simulator`` starts the Modbus TCP servers (one per host:port), the BACnet/IP devices (one per device) and the
MQTT sensors (when a broker URL is given) for any ValueSource, and stops them all cleanly.

**Live faults** (`retrofit simulate fault inject|clear|list`): ``ControlledValues`` wraps the ValueSource.
When the ValueSource can take faults itself (the physics, simulators/site_sim.SiteSimulation, has
``inject(kind, target, duration_s, params)`` / ``clear(fault_id=...)``) every fault kind goes there, so an
injected fault acts in the physics exactly like a scenario's. ``device_garbage`` (malformed frames) is a wire
behaviour only, so the wrapper applies it; on a ValueSource without ``inject`` the wrapper also applies
``device_offline``, ``device_errors`` and ``sensor_stuck`` itself.

**Control endpoint**: a JSON-lines TCP server bound to 127.0.0.1 only, on a free port, that requires a random
token. Port, token and pid go into a control file created with mode 0600, so only the user who started the
simulator (or root) can read the token and drive it; the file is removed on shutdown. One request per line:
``{"token": ..., "op": "inject" | "clear" | "list" | "endpoints", ...}``; one JSON answer per line. The one
client is buildings/simcontrol.control_request (used by `retrofit simulate fault` and the dashboard).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from buildings.simcontrol import ControlError
from buildings.site import Protocol, Site
from buildings.yamlfile import suggest
from simulators.servers import Endpoint
from simulators.servers.bacnet import BacnetDeviceServer, start_bacnet
from simulators.servers.modbus import ModbusEndpointServer, start_modbus
from simulators.servers.mqtt import MqttSensorPublisher, start_mqtt
from simulators.values import DeviceMode, ValueSource

log = logging.getLogger(__name__)

DEVICE_FAULTS = {"device_offline": DeviceMode.OFFLINE, "device_errors": DeviceMode.ERRORS,
                 "device_garbage": DeviceMode.GARBAGE}
LOCAL_POINT_FAULTS = {"sensor_stuck"}


@dataclass
class InjectedFault:
    """A fault a technician injected into the running simulator (times on the simulation clock)."""

    id: str
    kind: str
    target: str
    start: float
    end: float = math.inf
    params: dict[str, float] = field(default_factory=dict)
    stuck_value: float | str | None = None
    delegated: bool = False  # handed to the physics (cleared there too)

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["end"] = None if math.isinf(self.end) else self.end
        return d


class ControlledValues:
    """A ValueSource with technician-injected faults layered on top of another ValueSource."""

    def __init__(self, inner: ValueSource, site: Site) -> None:
        self.inner, self.site = inner, site
        self.faults: dict[str, InjectedFault] = {}
        self._device_modes: dict[str, tuple[DeviceMode, float]] = {}  # device key -> (mode, end)
        self._stuck: dict[str, InjectedFault] = {}
        self._n = 0

    # --- ValueSource ---------------------------------------------------------------------------------------

    def value(self, point_key: str) -> float | str | None:
        f = self._stuck.get(point_key)
        if f is not None and f.active(self.inner.now()):
            return f.stuck_value
        return self.inner.value(point_key)

    def device_mode(self, device_key: str) -> DeviceMode:
        hit = self._device_modes.get(device_key)
        if hit is not None and self.inner.now() < hit[1]:
            return hit[0]
        return self.inner.device_mode(device_key)

    def now(self) -> float:
        return self.inner.now()

    # --- control -------------------------------------------------------------------------------------------

    def inject(self, kind: str, target: str, duration_s: float | None = None,
               params: dict[str, float] | None = None) -> InjectedFault:
        """Start a fault now; it ends after duration_s of simulation time, or when cleared."""
        target = target.strip("/")
        now = self.inner.now()
        self._n += 1
        f = InjectedFault(id=f"wire-{self._n}", kind=kind, target=target, start=now,
                          end=now + duration_s if duration_s else math.inf, params=dict(params or {}))
        physics_inject: Callable[..., Any] | None = getattr(self.inner, "inject", None)
        if physics_inject is not None and kind != "device_garbage":
            try:
                pf = physics_inject(kind, target, duration_s=duration_s, params=f.params)
            except ValueError as exc:  # SiteError / unknown kind: the physics says what is wrong
                raise ControlError(_one_line(exc, kind)) from None
            f.id, f.start, f.end, f.delegated = pf.id, pf.start, pf.end, True
        elif kind in DEVICE_FAULTS:
            if target not in self.site.devices:
                raise ControlError(f"{kind} targets a device as building/device; {target!r} is not one"
                                   f"{suggest(target, self.site.devices)}")
            self._device_modes[target] = (DEVICE_FAULTS[kind], f.end)
        elif kind in LOCAL_POINT_FAULTS:
            if target not in self.site.points:
                raise ControlError(f"{kind} targets a point as building/point; {target!r} is not one"
                                   f"{suggest(target, self.site.points)}")
            f.stuck_value = params["value"] if params and "value" in params else self.inner.value(target)
            self._stuck[target] = f
        else:
            raise ControlError(f"fault kind {kind!r} needs the physics; this simulator's values cannot take it. "
                               f"Kinds that always work: {', '.join(sorted(DEVICE_FAULTS) + ['sensor_stuck'])}")
        self.faults[f.id] = f
        return f

    def clear(self, fault_id: str | None = None, target: str | None = None) -> list[InjectedFault]:
        """Clear one fault by id, every fault on a target, or (neither given) every injected fault."""
        hits = [f for f in self.faults.values()
                if (fault_id is None or f.id == fault_id) and (target is None or f.target == target.strip("/"))]
        if not hits and (fault_id or target):
            known = ", ".join(f"{f.id} ({f.kind} on {f.target})" for f in self.faults.values()) or "none"
            raise ControlError(f"no injected fault matches {fault_id or target!r}; active: {known}")
        for f in hits:
            del self.faults[f.id]
            if f.delegated:
                self.inner.clear(fault_id=f.id)  # type: ignore[attr-defined]
            elif f.kind in DEVICE_FAULTS:
                self._device_modes.pop(f.target, None)
            elif f.kind in LOCAL_POINT_FAULTS:
                self._stuck.pop(f.target, None)
        return hits

    def active(self) -> list[InjectedFault]:
        now = self.inner.now()
        return [f for f in self.faults.values() if f.end > now]


def _one_line(exc: Exception, kind: str) -> str:
    """A physics error as one readable line (a SiteError carries Problems; an unknown kind a ValueError)."""
    problems = getattr(exc, "problems", None)
    if problems:
        return "; ".join(f"{p.field}: {p.message}" + (f" ({p.hint})" if p.hint else "") for p in problems)
    text = str(exc)
    if "FaultKind" in text:
        try:
            from simulators.faults import FaultKind

            kinds = [k.value for k in FaultKind] + ["device_garbage"]
        except ImportError:  # pragma: no cover - the physics ships faults.py
            kinds = sorted(DEVICE_FAULTS)
        return f"unknown fault kind {kind!r}; known: {', '.join(kinds)}"
    return text


class Simulator:
    """Every device of a site, served over its protocols, plus the control endpoint."""

    def __init__(self, site: Site, values: ValueSource, mqtt_url: str | None = None, speed: float = 1.0,
                 refresh_s: float = 1.0, mqtt_username: str | None = None, mqtt_password: str | None = None) -> None:
        self.site = site
        self.values = values if isinstance(values, ControlledValues) else ControlledValues(values, site)
        self.mqtt_url, self.speed, self.refresh_s = mqtt_url, speed, refresh_s
        self.mqtt_username, self.mqtt_password = mqtt_username, mqtt_password
        self.modbus: list[ModbusEndpointServer] = []
        self.bacnet: list[BacnetDeviceServer] = []
        self.mqtt: MqttSensorPublisher | None = None
        self.control: ControlServer | None = None
        self.skipped: list[str] = []

    async def start(self, control_file: Path | None = None) -> Simulator:
        try:
            self.modbus = await start_modbus(self.site, self.values, self.refresh_s)
            self.bacnet = await start_bacnet(self.site, self.values, self.refresh_s)
            if self.mqtt_url:
                self.mqtt = await start_mqtt(self.site, self.values, self.mqtt_url, self.speed,
                                             self.mqtt_username, self.mqtt_password)
            if control_file is not None:
                self.control = await ControlServer(self, control_file).start()
        except BaseException:
            await self.stop()
            raise
        for bf in self.site.files:
            for d in bf.devices:
                if d.protocol in (Protocol.MODBUS, Protocol.MODBUS_RTU) and d.serial_port:
                    self.skipped.append(f"{bf.building.id}/{d.id}: serial Modbus RTU ({d.serial_port}) is not "
                                        "simulated; give it a TCP gateway port to simulate it")
                if d.protocol == Protocol.MQTT and not self.mqtt_url:
                    self.skipped.append(f"{bf.building.id}/{d.id}: MQTT sensors need a broker (--mqtt-url)")
        return self

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
            self.control = None
        if self.mqtt is not None:
            await self.mqtt.stop()
            self.mqtt = None
        await asyncio.gather(*(s.stop() for s in self.modbus), *(b.stop() for b in self.bacnet),
                             return_exceptions=True)
        self.modbus, self.bacnet = [], []

    def endpoints(self) -> list[Endpoint]:
        out = [e for s in self.modbus for e in s.endpoints()] + [e for b in self.bacnet for e in b.endpoints()]
        if self.mqtt is not None:
            out += self.mqtt.endpoints()
        return out

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        """One control request (already authenticated) -> its answer."""
        op = req.get("op")
        try:
            if op == "inject":
                duration = req.get("duration_s")
                f = self.values.inject(str(req.get("kind", "")), str(req.get("target", "")),
                                       float(duration) if duration else None,
                                       {str(k): float(v) for k, v in (req.get("params") or {}).items()})
                return {"ok": True, "fault": f.as_dict()}
            if op == "clear":
                gone = self.values.clear(req.get("id"), req.get("target"))
                return {"ok": True, "cleared": [f.as_dict() for f in gone]}
            if op == "list":
                return {"ok": True, "faults": [f.as_dict() for f in self.values.active()], "now": self.values.now()}
            if op == "endpoints":
                return {"ok": True, "endpoints": [e.as_dict() for e in self.endpoints()]}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": False, "error": f"unknown op {op!r}; use inject, clear, list or endpoints"}


class ControlServer:
    """Loopback JSON-lines endpoint with a token; see the module doc."""

    def __init__(self, sim: Simulator, control_file: Path) -> None:
        self.sim, self.path = sim, Path(control_file)
        self.token = secrets.token_urlsafe(24)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> ControlServer:
        _refuse_if_live(self.path)
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, limit=65536)
        self.port = self.server.sockets[0].getsockname()[1]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"pid": os.getpid(), "host": "127.0.0.1", "port": self.port, "token": self.token}, fh)
        os.replace(tmp, self.path)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        with contextlib.suppress(FileNotFoundError):
            data = json.loads(self.path.read_text())
            if data.get("pid") == os.getpid():
                self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await asyncio.wait_for(reader.readline(), 30):
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("not an object")
                except ValueError:
                    answer = {"ok": False, "error": "send one JSON object per line"}
                else:
                    if not hmac.compare_digest(str(req.get("token", "")), self.token):
                        answer = {"ok": False, "error": "bad token: read it from the control file"}
                        writer.write((json.dumps(answer) + "\n").encode())
                        await writer.drain()
                        break
                    answer = self.sim.handle(req)
                writer.write((json.dumps(answer, default=str) + "\n").encode())
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _refuse_if_live(path: Path) -> None:
    """A control file of a simulator that is still running must not be taken over."""
    try:
        data = json.loads(path.read_text())
        pid = int(data["pid"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return
    if pid == os.getpid():
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    raise ControlError(f"another simulator (pid {pid}) is running with control file {path}; stop it or pass "
                       "another --control-file")


def planned_endpoints(site: Site, mqtt_url: str | None = None) -> list[Endpoint]:
    """What a Simulator would serve for this site, without opening anything (`--list-endpoints`)."""
    from simulators.servers.bacnet import bacnet_devices
    from simulators.servers.modbus import modbus_groups
    from simulators.servers.mqtt import broker_from_url, mqtt_sensors

    out = []
    for (host, port), units in modbus_groups(site).items():
        for key, dev, pts in sorted(units, key=lambda u: u[1].unit_id or 0):
            b, _, d = key.partition("/")
            out.append(Endpoint("modbus", host, port, b, d, unit_id=dev.unit_id, points=len(pts)))
    for key, dev, pts in bacnet_devices(site):
        b, _, d = key.partition("/")
        out.append(Endpoint("bacnet", dev.host, dev.port or dev.default_port, b, d,
                            device_instance=dev.device_instance, points=len(pts)))
    host, port = (broker_from_url(mqtt_url)[:2]) if mqtt_url else ("", None)
    for sensor in mqtt_sensors(site):
        b, _, d = sensor.device_key.partition("/")
        out.append(Endpoint("mqtt", host, port, b, d, topic=sensor.topic, points=len(sensor.points)))
    return out


async def serve_until(sim: Simulator, stop: asyncio.Event) -> None:
    """Run until the event is set (SIGINT/SIGTERM in the command), then stop everything."""
    try:
        await stop.wait()
    finally:
        await sim.stop()
