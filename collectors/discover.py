"""Commissioning: find what a BACnet device or a Modbus unit offers and print a draft site file.

The draft is a valid building file (``retrofit site check`` accepts it) with placeholders a technician edits:
building name and address, equipment, point names, Brick classes (``Point`` until someone knows better).
Discovery only reads; it never writes to a device.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.pdu import Address

from buildings.site import BacnetSource
from collectors.drivers.bacnet import BacnetClient, describe_error
from collectors.drivers.base import DeviceError
from collectors.drivers.modbus import ModbusExceptionReply, ModbusLink
from collectors.planner import READ_LIMIT_REGISTERS

log = logging.getLogger("collectors.discover")

SUPPORTED_OBJECTS = set(BacnetSource.model_fields["object_type"].annotation.__args__)  # type: ignore[union-attr]
# BACnet engineering units -> the site vocabulary (buildings/brick.py UNITS)
BACNET_UNITS = {
    "degrees-celsius": "degC", "percent-relative-humidity": "%RH", "percent": "%", "parts-per-million": "ppm",
    "pascals": "Pa", "kilopascals": "kPa", "kilowatts": "kW", "kilowatt-hours": "kWh", "volts": "V",
    "amperes": "A", "hertz": "Hz", "power-factor": "PF", "cubic-meters": "m3", "cubic-meters-per-hour": "m3/h",
    "liters-per-second": "L/s", "luxes": "lux", "kilovolt-amperes": "kVA", "kilovolt-amperes-reactive": "kvar",
    "delta-degrees-kelvin": "K", "hours": "h", "no-units": "",
}
# a Brick class to start from, by unit (the technician refines it)
BRICK_BY_UNIT = {"degC": "Air_Temperature_Sensor", "%RH": "Relative_Humidity_Sensor", "ppm": "CO2_Sensor",
                 "kW": "Electric_Power_Sensor", "kWh": "Electric_Energy_Sensor", "V": "Voltage_Sensor",
                 "A": "Current_Sensor", "Hz": "Frequency_Sensor", "PF": "Power_Factor_Sensor",
                 "lux": "Luminance_Sensor"}


def slug(text: str, fallback: str) -> str:
    s = re.sub(r"[^a-z0-9_.\-]+", "-", text.strip().lower()).strip("-._")
    return (s or fallback)[:64]


def draft_building(building_id: str, devices: list[dict[str, Any]], points: list[dict[str, Any]]) -> dict[str, Any]:
    """A minimal valid building file around discovered devices and points."""
    return {
        "building": {"id": building_id, "name": {"zh": "待填写", "en": "TODO building name"},
                     "address": "TODO address", "year_built": 2000, "gross_floor_area_m2": 1, "use": "office",
                     "owners": [{"owner": "todo", "name": "TODO owner", "area_m2": 1}]},
        "devices": devices,
        "equipment": [{"id": "unassigned", "name": "TODO: split these points into equipment", "kind": "sensor_node",
                       "points": points}],
    }


def to_yaml(doc: dict[str, Any], header: str) -> str:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return "".join(f"# {line}\n" for line in header.splitlines()) + buf.getvalue()


# --- BACnet -----------------------------------------------------------------------------------------------


@dataclass
class FoundDevice:
    instance: int
    address: str
    max_apdu: int
    segmentation: bool
    name: str = ""
    objects: list[dict[str, Any]] = field(default_factory=list)


async def _bounded(coro: Any, timeout_s: float, what: str) -> Any:
    try:
        result = await asyncio.wait_for(coro, timeout_s)
    except TimeoutError:
        raise DeviceError(f"{what}: no answer within {timeout_s:g} s") from None
    except ErrorRejectAbortNack as err:  # BaseException in bacpypes3
        raise DeviceError(f"{what}: {describe_error(err)}") from None
    if isinstance(result, ErrorRejectAbortNack):
        raise DeviceError(f"{what}: {describe_error(result)}")
    return result


async def discover_bacnet(targets: list[str], local_address: str | None = None, low: int | None = None,
                          high: int | None = None, timeout_s: float = 3.0) -> list[FoundDevice]:
    """Directed Who-Is to each target (HOST[:PORT]), then object-list, names, units and present values."""
    client = BacnetClient(local_address, instance=4194001, name="retrofit-discover")
    app = client.start()
    found: list[FoundDevice] = []
    try:
        for target in targets:
            host, _, port = target.partition(":")
            addr = Address(f"{host}:{port or 47808}")
            try:
                i_ams = await asyncio.wait_for(app.who_is(low, high, addr, timeout=timeout_s), timeout_s + 1)
            except (TimeoutError, ErrorRejectAbortNack):
                i_ams = []
            if not i_ams:
                log.warning("no I-Am from %s (check the address and port, and that BACnet/IP is enabled)", target)
                continue
            for iam in i_ams:
                inst = int(iam.iAmDeviceIdentifier[1])
                dev = FoundDevice(instance=inst, address=f"{host}:{port or 47808}",
                                  max_apdu=int(iam.maxAPDULengthAccepted),
                                  segmentation=str(iam.segmentationSupported) != "no-segmentation")
                await _read_objects(app, addr, dev, timeout_s)
                found.append(dev)
    finally:
        client.close()
    return found


async def _read_objects(app: Any, addr: Address, dev: FoundDevice, timeout_s: float) -> None:
    what = f"device {dev.instance} at {dev.address}"
    dev.name = str(await _bounded(app.read_property(addr, f"device,{dev.instance}", "object-name"), timeout_s,
                                  f"{what} object-name"))
    try:
        objects = await _bounded(app.read_property(addr, f"device,{dev.instance}", "object-list"), timeout_s,
                                 f"{what} object-list")
    except DeviceError:  # too long for an unsegmented answer: read it element by element
        n = int(await _bounded(app.read_property(addr, f"device,{dev.instance}", "object-list", 0), timeout_s,
                               f"{what} object-list length"))
        objects = [await _bounded(app.read_property(addr, f"device,{dev.instance}", "object-list", i), timeout_s,
                                  f"{what} object-list[{i}]") for i in range(1, n + 1)]
    for objid in objects:
        otype, inst = str(objid[0]), int(objid[1])
        if otype not in SUPPORTED_OBJECTS:
            continue
        info: dict[str, Any] = {"object_type": otype, "instance": inst}
        for prop in ("object-name", "units", "present-value"):
            if prop == "units" and not otype.startswith(("analog", "accumulator")):
                continue
            try:
                info[prop] = await _bounded(app.read_property(addr, f"{otype},{inst}", prop), timeout_s,
                                            f"{what} {otype},{inst} {prop}")
            except DeviceError as exc:
                log.info("%s", exc)
        dev.objects.append(info)


def bacnet_draft(found: list[FoundDevice], building_id: str = "new-building") -> dict[str, Any]:
    devices: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    for dev in found:
        dev_id = slug(dev.name, f"bacnet-{dev.instance}")
        host, _, port = dev.address.partition(":")
        devices.append({"id": dev_id, "protocol": "bacnet", "host": host, "port": int(port),
                        "device_instance": dev.instance, "max_apdu": max(50, min(1476, dev.max_apdu)),
                        "segmentation": dev.segmentation})
        for obj in dev.objects:
            unit = BACNET_UNITS.get(str(obj.get("units", "")), "")
            if obj["object_type"].startswith(("binary", "multi-state")):
                unit = "bool" if obj["object_type"].startswith("binary") else ""
            pid = slug(str(obj.get("object-name", "")), f"{obj['object_type']}-{obj['instance']}")
            while pid in seen:
                pid = f"{pid}-{obj['instance']}"[:64]
            seen.add(pid)
            pv = obj.get("present-value")
            points.append({"id": pid, "name": f"TODO name ({obj['object_type']},{obj['instance']}, read {pv})",
                           "brick": BRICK_BY_UNIT.get(unit, "Point"), "unit": unit,
                           "bacnet": {"device": dev_id, "object_type": obj["object_type"],
                                      "instance": obj["instance"]}})
    return draft_building(building_id, devices, points)


# --- Modbus -----------------------------------------------------------------------------------------------


async def scan_modbus(host: str, port: int, unit: int, start: int, end: int, function: str = "holding",
                      timeout_s: float = 2.0, rtu: bool = False) -> dict[int, int]:
    """Registers in [start, end] that answer, with their raw values: block reads, then one by one where a
    block hits an unmapped address (exception 2)."""
    from buildings.site import Device, ModbusFunction

    dev = Device(id="scan", protocol="modbus-rtu" if rtu else "modbus", host=host, port=port, unit_id=unit,
                 timeout_s=timeout_s)
    from collectors.drivers.modbus import READ_METHOD

    method = READ_METHOD[ModbusFunction(function)]
    link = ModbusLink(dev)
    found: dict[int, int] = {}

    async def block(a: int, n: int) -> list[int] | None:
        resp = await link.call(method, a, n, unit, timeout_s, 0.0, f"scan {host}:{port} unit {unit} {a}+{n}")
        if resp.isError():  # type: ignore[attr-defined]
            code = getattr(resp, "exception_code", None)
            if code in (2, 3):
                return None
            raise ModbusExceptionReply(code, f"unit {unit} answers Modbus exception {code} at {a}")
        if function in ("coil", "discrete_input"):
            return [1 if b else 0 for b in resp.bits[:n]]  # type: ignore[attr-defined]
        return list(resp.registers)  # type: ignore[attr-defined]

    try:
        a = start
        while a <= end:
            n = min(READ_LIMIT_REGISTERS, end - a + 1)
            regs = await block(a, n)
            if regs is not None:
                found.update({a + i: v for i, v in enumerate(regs[:n])})
            else:
                for b in range(a, a + n):
                    one = await block(b, 1)
                    if one is not None:
                        found[b] = one[0]
            a += n
    finally:
        link.reset()
    return found


def modbus_draft(found: dict[int, int], host: str, port: int, unit: int, function: str = "holding",
                 building_id: str = "new-building", rtu: bool = False) -> dict[str, Any]:
    dev_id = f"modbus-{unit}"
    device = {"id": dev_id, "protocol": "modbus-rtu" if rtu else "modbus", "host": host, "port": port,
              "unit_id": unit}
    is_bits = function in ("coil", "discrete_input")
    points = [{"id": f"{function.replace('_', '-')}-{a}", "name": f"TODO name (raw {v})", "brick": "Point",
               "unit": "bool" if is_bits else "",
               "modbus": {"device": dev_id, "function": function, "address": a,
                          "type": "bit" if is_bits else "uint16"}}
              for a, v in sorted(found.items())]
    return draft_building(building_id, [device], points)
