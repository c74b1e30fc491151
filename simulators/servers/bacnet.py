"""BACnet/IP simulator: one bacpypes3 application per BACnet device of the site, on its own UDP port.

- Bound as ``HOST/8:PORT`` for loopback hosts (the mask form also opens the broadcast socket; the plain host
  form would resolve to the machine's real network card). One port per device, because on one machine a
  global Who-Is only reaches devices on the sender's own port: address devices directly or by directed Who-Is.
- A device object (instance, name, vendor, ``maxApduLengthAccepted`` from the site's ``max_apdu``,
  ``segmentationSupported`` from ``segmentation``), one object per point: analog/binary/multi-state
  input/output/value and accumulator, with present-value, units, status-flags, object-name, description,
  cov-increment. ReadProperty, ReadPropertyMultiple (segmented when large), COV subscriptions and Who-Is are
  bacpypes3's own services.
- ``rpm: false`` rejects ReadPropertyMultiple (Reject: unrecognized-service) and drops it from
  protocol-services-supported; ``segmentation: false`` makes a too-large reply abort with
  segmentation-not-supported, as such controllers do, so the collectors' fallbacks can be tested.
- Values: every ``refresh_s`` a task writes the ValueSource's values into present-value (which is what fires COV
  notifications); a confirmed request arriving after a longer pause refreshes first, so a read is never older
  than ``refresh_s``. A value of None sets status-flags fault and reliability no-sensor.
- Present-value reads (ReadProperty and ReadPropertyMultiple of present-value only, what every poller sends)
  are answered by a small encoder of the ACK from the objects' live present-value, as a controller's firmware
  does, instead of bacpypes3's generic object machinery (about 0.5 ms of this simulator's CPU per property,
  which made the simulator, not the client, the bound of every benchmark). Anything else (other properties,
  array indexes, unknown objects, 'all') goes through bacpypes3, so errors and the rest answer as before. The
  values are read at request time: nothing is cached between requests.
- Decoded ReadProperty / ReadPropertyMultiple requests are kept by their bytes (at most 4096): a poller sends
  the same requests every cycle, and bacpypes3's decoder was then half of this simulator's CPU (a device's
  firmware decodes a request in microseconds). Each use gets its own copy with that request's header (invoke
  id, source); answers are never cached. Installed when this module is imported, for confirmed RP / RPM
  requests only, so a collector in the same process (which sends, never receives, those) is not affected.
- ``refuse_cov`` (a BacnetDeviceServer attribute, for tests) rejects SubscribeCOV with Reject
  unrecognized-service, as a controller without COV does.
- Device modes: *offline* drops every incoming and outgoing packet (no Who-Is answer, no COV); *errors* answers
  every confirmed request with Error(device, operational-problem); *garbage* sends a malformed APDU (the header
  is kept so it reaches the waiting request, the tagged data is cut and corrupted).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bacpypes3.apdu import (
    APCISequence,
    ComplexAckPDU,
    ConfirmedRequestPDU,
    Error,
    ReadAccessResult,
    ReadPropertyMultipleACK,
    ReadPropertyMultipleRequest,
    ReadPropertyRequest,
    RejectPDU,
    RejectReason,
    SubscribeCOVRequest,
)
from bacpypes3.app import Application
from bacpypes3.basetypes import EngineeringUnits, PropertyIdentifier, Reliability, Segmentation, StatusFlags
from bacpypes3.errors import ObjectError
from bacpypes3.local.analog import AnalogInputObject, AnalogOutputObject, AnalogValueObject
from bacpypes3.local.binary import BinaryInputObject, BinaryOutputObject, BinaryValueObject
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.multistate import MultiStateInputObject, MultiStateValueObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.local.object import Object as _LocalObject
from bacpypes3.object import AccumulatorObject as _AccumulatorObject
from bacpypes3.pdu import PDU
from bacpypes3.service.object import read_property_to_result_element

from buildings.bacpypes_speedup import install as _install_speedup
from buildings.site import Device, Point, Protocol, Site, point_key
from simulators.servers import Endpoint
from simulators.values import DeviceMode, ValueSource

if TYPE_CHECKING:
    from bacpypes3.basetypes import ServicesSupported

log = logging.getLogger(__name__)
_install_speedup()  # bacpypes3's per-object inspect.getattr_static, cached (see buildings/bacpypes_speedup.py)

_READ_SERVICES = (12, 14)  # confirmed ReadProperty, ReadPropertyMultiple
_DECODE_CACHE_SIZE = 4096


def _install_request_decode_cache() -> None:
    """Keep decoded RP / RPM requests by their bytes (see the module doc); idempotent."""
    original = APCISequence.decode.__func__  # type: ignore[attr-defined]
    if getattr(original, "_retrofit_cache", False):
        return
    cache: OrderedDict[bytes, Any] = OrderedDict()

    def decode(cls: type, apdu: Any) -> Any:
        if apdu.apduType != ConfirmedRequestPDU.pduType or apdu.apduService not in _READ_SERVICES:
            return original(cls, apdu)
        key = bytes((apdu.apduService,)) + bytes(apdu.pduData)
        decoded = cache.get(key)
        if decoded is None:
            decoded = cache[key] = original(cls, apdu)
            if len(cache) > _DECODE_CACHE_SIZE:
                cache.popitem(last=False)
        mine = copy.copy(decoded)  # the request's fields are shared, read-only; the header is this request's
        mine.update(apdu)
        return mine

    decode._retrofit_cache = True  # type: ignore[attr-defined]
    APCISequence.decode = classmethod(decode)  # type: ignore[method-assign, assignment]


_install_request_decode_cache()


class AccumulatorObject(_LocalObject, _AccumulatorObject):
    """A local accumulator (bacpypes3 ships no local one): a counter with units and scale."""


UNITS = {"degC": "degreesCelsius", "K": "deltaDegreesKelvin", "%RH": "percentRelativeHumidity", "%": "percent",
         "ppm": "partsPerMillion", "%LEL": "percent", "Pa": "pascals", "kPa": "kilopascals", "kW": "kilowatts",
         "kVA": "kilovoltAmperes", "kvar": "kilovoltAmperesReactive", "kWh": "kilowattHours", "V": "volts",
         "A": "amperes", "Hz": "hertz", "PF": "powerFactor", "m3": "cubicMeters", "m3/h": "cubicMetersPerHour",
         "L/s": "litersPerSecond", "lux": "luxes", "h": "hours"}

_CLASSES: dict[str, type] = {
    "analog-input": AnalogInputObject, "analog-output": AnalogOutputObject, "analog-value": AnalogValueObject,
    "binary-input": BinaryInputObject, "binary-output": BinaryOutputObject, "binary-value": BinaryValueObject,
    "multi-state-input": MultiStateInputObject, "multi-state-value": MultiStateValueObject,
    "accumulator": AccumulatorObject,
}
_OK_FLAGS = StatusFlags([0, 0, 0, 0])
_FAULT_FLAGS = StatusFlags([0, 1, 0, 0])


def _units(unit: str) -> EngineeringUnits:
    return EngineeringUnits(UNITS.get(unit, "noUnits"))


def _pv(kind: str, value: float | str | None) -> Any:
    """A ValueSource value as the object type's present-value."""
    v = float(value)  # type: ignore[arg-type]
    if kind.startswith("binary"):
        return "active" if v else "inactive"
    if kind.startswith("multi-state"):
        return max(1, int(round(v)))
    if kind == "accumulator":
        return max(0, int(round(v)))
    return v


def make_object(kind: str, instance: int, p: Point) -> Any:
    """The BACnet object for one point, with a neutral starting value."""
    cls = _CLASSES[kind]
    kw: dict[str, Any] = dict(objectIdentifier=(kind, instance), objectName=p.id,
                              description=(p.name if not p.name_zh else f"{p.name} / {p.name_zh}")[:64],
                              statusFlags=_OK_FLAGS, eventState="normal", outOfService=False)
    if kind.startswith("analog"):
        kw.update(presentValue=0.0, units=_units(p.unit), covIncrement=0.1)
        if p.range:
            kw.update(minPresValue=float(p.range[0]), maxPresValue=float(p.range[1]))
    elif kind.startswith("binary"):
        kw.update(presentValue="inactive")
    elif kind.startswith("multi-state"):
        kw.update(presentValue=1, numberOfStates=max(2, int(p.sim.get("states", 4))))
    else:
        kw.update(presentValue=0, units=_units(p.unit), scale=1.0)
    if kind.endswith("output"):
        kw.update(relinquishDefault=kw["presentValue"])
    return cls(**kw)


_SPECIAL_PROPERTIES = (PropertyIdentifier.all, PropertyIdentifier.required, PropertyIdentifier.optional)


class SimApplication(Application):
    """A bacpypes3 Application whose wire behaviour follows the device mode and the site's rpm flag."""

    sim: BacnetDeviceServer

    async def indication(self, apdu: Any) -> None:  # type: ignore[override]
        sim = self.sim
        mode = sim.mode()
        if mode == DeviceMode.OFFLINE:
            return
        if isinstance(apdu, ConfirmedRequestPDU):
            if mode == DeviceMode.ERRORS:
                await self.response(Error(service_choice=apdu.apduService, errorClass="device",
                                          errorCode="operationalProblem", context=apdu))
                return
            if (isinstance(apdu, ReadPropertyMultipleRequest) and not sim.device.rpm
                    or isinstance(apdu, SubscribeCOVRequest) and sim.refuse_cov):
                await self.response(RejectPDU(reason=RejectReason.unrecognizedService, context=apdu))
                return
            sim.refresh_if_stale()
        await super().indication(apdu)

    async def do_ReadPropertyMultipleRequest(self, apdu: ReadPropertyMultipleRequest) -> None:  # noqa: N802
        """RPM of named properties (what every collector sends) answered directly; bacpypes3's own handler
        recomputes each object's required-property set for every property reference, which made the simulator,
        not the collector, the bottleneck of RPM polling. 'all' / 'required' / 'optional' and the wildcard device
        go to bacpypes3's handler, so the answers are the same."""
        specs = apdu.listOfReadAccessSpecs
        fast = self.sim.present_values_rpm(specs)
        if fast is not None:
            await self.response(_ack(apdu, fast))
            return
        for spec in specs:
            if spec.objectIdentifier[1] == 4194303 or any(
                    ref.propertyIdentifier in _SPECIAL_PROPERTIES for ref in spec.listOfPropertyReferences):
                await super().do_ReadPropertyMultipleRequest(apdu)
                return
        objects = [self.get_object_id(spec.objectIdentifier) for spec in specs]
        if not any(objects):
            raise ObjectError("unknown-object")
        results = []
        for spec, obj in zip(specs, objects, strict=True):
            elements = [await read_property_to_result_element(obj, ref.propertyIdentifier, ref.propertyArrayIndex)
                        for ref in spec.listOfPropertyReferences]
            results.append(ReadAccessResult(objectIdentifier=spec.objectIdentifier, listOfResults=elements))
        await self.response(ReadPropertyMultipleACK(listOfReadAccessResults=results, context=apdu))

    async def do_ReadPropertyRequest(self, apdu: ReadPropertyRequest) -> None:  # noqa: N802
        """A present-value read answered by the direct encoder (see the module doc); the rest by bacpypes3."""
        fast = None
        if apdu.propertyIdentifier == _PRESENT_VALUE and apdu.propertyArrayIndex is None:
            fast = self.sim.present_value_rp(apdu.objectIdentifier)
        if fast is None:
            await super().do_ReadPropertyRequest(apdu)
            return
        await self.response(_ack(apdu, fast))

    def get_services_supported(self) -> ServicesSupported:
        services = super().get_services_supported()
        if not self.sim.device.rpm:
            services[services.readPropertyMultiple] = 0
        return services


@dataclass
class BacnetDeviceServer:
    """One simulated BACnet device: its application, its objects and the refresh task."""

    key: str  # "building/device"
    device: Device
    points: list[tuple[str, Point]]
    values: ValueSource
    refresh_s: float = 1.0
    app: SimApplication | None = None
    objects: list[tuple[str, str, Any]] = field(default_factory=list)  # (point key, kind, object)
    last_refresh: float = -1e18
    _task: asyncio.Task | None = None
    _last: dict[int, Any] = field(default_factory=dict)  # object index -> present-value last written
    _faulty: set[int] = field(default_factory=set)  # object indexes flagged fault (no value)
    refuse_cov: bool = False  # reject SubscribeCOV (a controller without COV), for tests
    _by_id: dict[tuple[int, int], tuple[bytes, str, Any]] = field(default_factory=dict)  # for the direct encoder

    @property
    def host(self) -> str:
        return self.device.host

    @property
    def port(self) -> int:
        return self.device.port or self.device.default_port

    @property
    def address(self) -> str:
        """The bacpypes3 local address: mask form on loopback (see the module doc)."""
        mask = 8 if self.host.startswith("127.") else 24
        return f"{self.host}/{mask}:{self.port}"

    def mode(self) -> DeviceMode:
        return self.values.device_mode(self.key)

    async def start(self) -> BacnetDeviceServer:
        d = self.device
        _check_port_free(self.host, self.port, self.key)
        device_obj = DeviceObject(
            objectIdentifier=("device", d.device_instance), objectName=f"{self.key.replace('/', '.')}"[:64],
            vendorIdentifier=999, vendorName="retrofit simulator", modelName=d.model or "simulated controller",
            maxApduLengthAccepted=d.max_apdu,
            segmentationSupported=Segmentation.segmentedBoth if d.segmentation else Segmentation.noSegmentation,
        )
        port_obj = NetworkPortObject(self.address, objectIdentifier=("network-port", 1), objectName="NetworkPort-1")
        self.objects, self._last, self._faulty = [], {}, set()
        for key, p in self.points:
            src = p.bacnet
            assert src is not None
            self.objects.append((key, src.object_type, make_object(src.object_type, src.instance, p)))
        self._by_id = {}
        for _k, kind, obj in self.objects:
            otype, inst = obj.objectIdentifier
            self._by_id[(int(otype), int(inst))] = (struct.pack(">I", (int(otype) << 22) | int(inst)), kind, obj)
        self.app = SimApplication.from_object_list([device_obj, port_obj] + [o for _k, _t, o in self.objects])
        self.app.sim = self
        self._wrap_link_layer()
        self.refresh()
        self._task = asyncio.create_task(self._refresh_loop(), name=f"bacnet-refresh-{self.key}")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self.app is not None:
            self.app.close()
            self.app = None

    def endpoints(self) -> list[Endpoint]:
        b, _, dev = self.key.partition("/")
        return [Endpoint("bacnet", self.host, self.port, b, dev, device_instance=self.device.device_instance,
                         points=len(self.points))]

    # --- values ------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Write the ValueSource's current values into the objects' present-value (fires COV detection)."""
        value, last, faulty = self.values.value, self._last, self._faulty
        for i, (key, kind, obj) in enumerate(self.objects):
            v = value(key)
            if v is None or isinstance(v, str) or (isinstance(v, float) and math.isnan(v)):
                if i not in faulty:
                    obj.statusFlags = _FAULT_FLAGS
                    obj.reliability = Reliability.noSensor
                    faulty.add(i)
                continue
            if i in faulty:
                obj.statusFlags = _OK_FLAGS
                obj.reliability = Reliability.noFaultDetected
                faulty.discard(i)
            pv = _pv(kind, v)
            if last.get(i) != pv:  # our own cache: reading a bacpypes3 property back is slow
                obj.presentValue = pv
                last[i] = pv
        self.last_refresh = time.monotonic()

    def refresh_if_stale(self) -> None:
        if time.monotonic() - self.last_refresh >= self.refresh_s:
            self.refresh()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.refresh_s, 0.05))
            try:
                if self.mode() != DeviceMode.OFFLINE:
                    self.refresh_if_stale()
            except Exception:  # noqa: BLE001 - one bad value must not stop the device
                log.exception("refreshing BACnet device %s failed", self.key)

    # --- present-value answers, encoded directly -----------------------------------------------------------

    def present_values_rpm(self, specs: Any) -> bytes | None:
        """The ReadPropertyMultiple-ACK data for a request of present-values only; None for anything else."""
        out = bytearray()
        for spec in specs:
            oid = spec.objectIdentifier
            entry = self._by_id.get((int(oid[0]), int(oid[1])))
            if entry is None:
                return None
            oid_bytes, kind, obj = entry
            out += b"\x0c" + oid_bytes + b"\x1e"  # [0] objectIdentifier, [1] listOfResults {
            for ref in spec.listOfPropertyReferences:
                if ref.propertyIdentifier != _PRESENT_VALUE or ref.propertyArrayIndex is not None:
                    return None
                out += b"\x29\x55\x4e" + _encode_pv(kind, obj.presentValue) + b"\x4f"  # [2] 85, [4] { value }
            out += b"\x1f"
        return bytes(out)

    def present_value_rp(self, oid: Any) -> bytes | None:
        """The ReadProperty-ACK data for one object's present-value; None for an unknown object."""
        entry = self._by_id.get((int(oid[0]), int(oid[1])))
        if entry is None:
            return None
        oid_bytes, kind, obj = entry
        return b"\x0c" + oid_bytes + b"\x19\x55\x3e" + _encode_pv(kind, obj.presentValue) + b"\x3f"

    # --- wire behaviour ----------------------------------------------------------------------------------

    def _wrap_link_layer(self) -> None:
        """Intercept the UDP send of this device: drop when offline, corrupt when garbage."""
        assert self.app is not None
        for link in self.app.link_layers.values():
            server = link.server
            send: Callable[[PDU], Any] = server.indication

            async def indication(pdu: PDU, _send: Callable[[PDU], Any] = send) -> None:
                mode = self.mode()
                if mode == DeviceMode.OFFLINE:
                    return
                if mode == DeviceMode.GARBAGE:
                    pdu = PDU(_garble(bytes(pdu.pduData)), source=pdu.pduSource, destination=pdu.pduDestination)
                await _send(pdu)

            server.indication = indication  # type: ignore[method-assign]


_PRESENT_VALUE = PropertyIdentifier.presentValue


def _encode_pv(kind: str, value: Any) -> bytes:
    """A present-value as an application-tagged BACnet value: REAL (analog), ENUMERATED (binary), UNSIGNED."""
    if kind.startswith("analog"):
        return b"\x44" + struct.pack(">f", float(value))
    n = max(0, int(value))
    body = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    return bytes([(0x90 if kind.startswith("binary") else 0x20) | len(body)]) + body


def _ack(request: Any, data: bytes) -> ComplexAckPDU:
    """A ComplexAck for ``request`` carrying already-encoded service data."""
    ack = ComplexAckPDU(context=request)
    ack.put_data(data)
    return ack


def _check_port_free(host: str, port: int, key: str) -> None:
    """bacpypes3 binds with SO_REUSEPORT, so a second device on a used port would share it silently: refuse."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot serve BACnet device {key} on {host}:{port}: {exc.strerror}; another BACnet "
                          "application uses that port. Give each device its own port, or use --free-ports") from None


def _garble(data: bytes) -> bytes:
    """Keep BVLL + NPDU + APDU header (type, invoke id, service), then tags that cannot decode."""
    if len(data) < 4:
        return data
    apdu = 6  # BVLL (4) + NPDU version and control (2): a direct reply carries no routing addresses
    head = bytearray(data[:apdu + 3])
    body = b"\x3e\xc4\xff\xff\x0c"  # opening tag 3, then an object id tag with too few bytes
    out = head + body
    out[2:4] = len(out).to_bytes(2, "big")  # BVLL length matches, so it is delivered and then fails to decode
    return bytes(out)


def bacnet_devices(site: Site) -> list[tuple[str, Device, list[tuple[str, Point]]]]:
    """Every BACnet device of the site with its points."""
    out = []
    for bf in site.files:
        for dev in bf.devices:
            if dev.protocol != Protocol.BACNET:
                continue
            pts = [(point_key(bf.building.id, p.id), p) for _eq, p in bf.points()
                   if p.bacnet and p.bacnet.device == dev.id]
            out.append((point_key(bf.building.id, dev.id), dev, pts))
    return out


async def start_bacnet(site: Site, values: ValueSource, refresh_s: float = 1.0) -> list[BacnetDeviceServer]:
    """Start one application per BACnet device; stop those started if one fails."""
    started: list[BacnetDeviceServer] = []
    try:
        for key, dev, pts in bacnet_devices(site):
            started.append(await BacnetDeviceServer(key, dev, pts, values, refresh_s).start())
    except BaseException:
        await asyncio.gather(*(s.stop() for s in started), return_exceptions=True)
        raise
    return started
