"""The one path that writes to a building's plant: explicit, checked, audited.

Only ``retrofit write --site PATH --point B/P --value V`` calls ``write_point``. It refuses any point not
declared ``writable: true`` (and MQTT sensors, which cannot be written), reads the old value, writes the new
one, reads it back, and appends one JSON line per attempt (refused ones too) to ``{data_dir}/audit/writes.log``:
who, what, when, old value, new value, result. The collectors' poll loops have no write code path at all.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from buildings.modbus_codec import CodecError, encode
from buildings.site import PointRef, Protocol, Site
from collectors.drivers.base import DeviceError
from collectors.planner import plan_device

AUDIT_FILE = Path("audit") / "writes.log"


class WriteRefused(ValueError):
    """The write is not allowed or not possible; nothing was sent to the device."""


def who() -> str:
    """The operator: the login name (and the sudo user behind it, if any)."""
    user = getpass.getuser()
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {user})" if sudo and sudo != user else user


def audit(data_dir: Path, entry: dict[str, Any]) -> Path:
    """Append one audit line and fsync it: the record exists before we report success."""
    path = Path(data_dir) / AUDIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def check_writable(site: Site, key: str) -> PointRef:
    ref = site.points.get(key)
    if ref is None:
        raise WriteRefused(f"no point {key!r} in this site (point keys are building_id/point_id)")
    if not ref.point.writable:
        raise WriteRefused(f"point {key} is not writable: the site file does not declare `writable: true` for "
                           f"it; collectors are read-only unless a point is explicitly declared writable")
    if ref.device.protocol == Protocol.MQTT:
        raise WriteRefused(f"point {key} is an MQTT sensor; sensors cannot be written")
    return ref


async def _read_current(ref: PointRef) -> float | str | None:
    from collectors.drivers.bacnet import BacnetClient, BacnetDriver
    from collectors.drivers.modbus import ModbusDriver

    plan = plan_device(f"{ref.building.id}/{ref.device.id}", ref.device, [ref])
    req = plan.groups[0].reads[0]
    if ref.device.protocol == Protocol.BACNET:
        client = BacnetClient()
        try:
            drv: Any = BacnetDriver(plan.device_key, ref.device, client)
            readings = await drv.read(req)
        finally:
            client.close()
    else:
        drv = ModbusDriver(plan.device_key, ref.device)
        try:
            readings = await drv.read(req)
        finally:
            await drv.close()
    return readings[0].value


async def _send(ref: PointRef, value: str, priority: int) -> None:
    if ref.point.modbus is not None:
        from collectors.drivers.modbus import write_point as modbus_write

        try:
            regs = encode(ref.point.modbus, value, strict=True)
        except CodecError as exc:
            raise WriteRefused(f"{value!r} cannot be written to {ref.key}: {exc}") from None
        await modbus_write(ref.device, ref.point.modbus, regs, ref.device.timeout_s)
        return
    from bacpypes3.apdu import ErrorRejectAbortNack
    from bacpypes3.pdu import Address

    from collectors.drivers.bacnet import BacnetClient, describe_error

    src = ref.point.bacnet
    assert src is not None
    client = BacnetClient()
    try:
        app = client.start()
        typed: Any = float(value) if not src.object_type.startswith(("binary", "multi-state")) else int(float(value))
        addr = Address(f"{ref.device.host}:{ref.device.port or ref.device.default_port}")
        try:
            result = await asyncio.wait_for(
                app.write_property(addr, f"{src.object_type},{src.instance}", src.property, typed,
                                   priority=priority), ref.device.timeout_s)
        except TimeoutError:
            raise DeviceError(f"no answer to the write within {ref.device.timeout_s:g} s") from None
        except ErrorRejectAbortNack as err:
            raise DeviceError(f"write refused: {describe_error(err)}") from None
        if isinstance(result, ErrorRejectAbortNack):
            raise DeviceError(f"write refused: {describe_error(result)}")
    finally:
        client.close()


async def write_point(site: Site, key: str, value: str, data_dir: Path, reason: str = "",
                      priority: int = 8) -> dict[str, Any]:
    """Check, read old, write, read back, audit. Returns the audit entry; raises WriteRefused / DeviceError."""
    entry: dict[str, Any] = {"ts": time.time(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             "who": who(), "host": socket.gethostname(), "point": key, "value": value,
                             "reason": reason}
    try:
        ref = check_writable(site, key)
    except WriteRefused as exc:
        audit(data_dir, {**entry, "result": "refused", "error": str(exc)})
        raise
    entry["device"] = f"{ref.building.id}/{ref.device.id}"
    try:
        entry["old_value"] = await _read_current(ref)
        await _send(ref, value, priority)
        entry["read_back"] = await _read_current(ref)
    except (WriteRefused, DeviceError) as exc:
        audit(data_dir, {**entry, "result": "failed", "error": str(exc)})
        raise
    entry["result"] = "written"
    audit(data_dir, entry)
    return entry
