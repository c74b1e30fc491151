"""BACnet/IP (bacpypes3): ReadPropertyMultiple sized by the planner, ReadProperty fallback, optional COV.

One ``BacnetClient`` (one bacpypes3 application on its own UDP port) serves every BACnet device of a collector
process. Traps handled here (see docs/collectors.md):

- bacpypes3 raises Error / Reject / Abort as ``ErrorRejectAbortNack``, a *BaseException*: ``except Exception``
  would let it through and kill the poll loop, so every call catches it explicitly.
- A silent device takes bacpypes3 12 s to give up (3 s x 4 tries): every request is bounded by the device's
  ``timeout_s`` with ``asyncio.wait_for``.
- Per-property errors inside an RPM answer arrive inline as ``ErrorType`` values: that point gets a BAD
  reading, the rest of the request is good.
- A device that rejects RPM (Reject "unrecognized-service", or Error services "service-request-denied") is
  switched to ReadProperty for the rest of the run, and the poll is retried that way; one that aborts an answer
  as too big ("segmentation-not-supported" / "buffer-overflow") gets RPMs of half the size from then on.

Sample device config (site file; defaults in brackets)::

    devices:
      - id: ahu-1-ctl
        protocol: bacnet
        host: 192.168.10.40
        port: 47808                # [47808]
        device_instance: 1001      # required (`retrofit discover bacnet` finds it)
        max_apdu: 1476             # [1476] what the device accepts; sizes our RPM requests
        segmentation: true         # [true] false: every RPM answer must fit one APDU
        rpm: true                  # [true] false: one ReadProperty per point
        max_points: 50             # [50] properties per RPM request
        timeout_s: 2               # [2]
        poll_interval_s: 30        # [60]
    # a point:  bacnet: {device: ahu-1-ctl, object_type: analog-input, instance: 1, property: present-value,
    #                    cov: true}   # cov: subscribe to change-of-value where the device offers it
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bacpypes3.apdu import AbortPDU, ErrorRejectAbortNack, RejectPDU
from bacpypes3.app import Application
from bacpypes3.argparse import SimpleArgumentParser
from bacpypes3.basetypes import ErrorType
from bacpypes3.pdu import Address

from buildings.bacpypes_speedup import install as _install_speedup
from buildings.site import Device, PointRef
from collectors.decode import bacnet_value, judge
from collectors.drivers.bacnet_cov import LIFETIME_S as COV_LIFETIME_S
from collectors.drivers.bacnet_cov import CovSubscriptions
from collectors.drivers.base import DeviceProtocolError, DeviceTimeout, DeviceUnreachable, Driver, DriverContext, Emit
from collectors.planner import BacnetPlanned, BacnetRead
from telemetry.reading import Quality, Reading

log = logging.getLogger("collectors.bacnet")
_install_speedup()  # bacpypes3's per-object inspect.getattr_static, cached (see buildings/bacpypes_speedup.py)

RPM_UNSUPPORTED = ("unrecognized-service", "unrecognizedService")
RPM_REFUSED_CODES = ("service-request-denied", "reject-unrecognized-service", "optional-functionality-not-supported")
TOO_BIG = ("segmentation-not-supported", "segmentationNotSupported", "buffer-overflow", "bufferOverflow",
           "apdu-too-long", "apduTooLong")


POINT_HINTS = {
    "unknown-object": "the object is gone from the device (reprogrammed?): re-run `retrofit discover bacnet` "
                      "and update the site file",
    "unknown-property": "the object has no such property: check the point's property in the site file",
    "read-access-denied": "the device refuses to read it: check its access settings or remove the point",
    "missing from the answer": "the device left it out of its RPM answer: try rpm: false for this device",
}


def point_hint(why: str) -> str:
    """What to check for a property error, by its error code ('' when there is nothing useful to add)."""
    return next((f"; {hint}" for code, hint in POINT_HINTS.items() if code in why), "")


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def describe_error(err: BaseException) -> str:
    """A readable one-liner for a bacpypes3 Error / Reject / Abort."""
    kind = "Reject" if isinstance(err, RejectPDU) else "Abort" if isinstance(err, AbortPDU) else "Error"
    if isinstance(err, RejectPDU | AbortPDU):
        return f"BACnet {kind}: {getattr(err, 'apduAbortRejectReason', '?')}"
    cls, code = getattr(err, "errorClass", None), getattr(err, "errorCode", None)
    return f"BACnet {kind}: {cls}: {code}" if cls is not None else f"BACnet {kind}: {err}"


class BacnetClient:
    """The collector's own BACnet application (one UDP port), shared by every BACnet device it polls.

    ``local_address`` is bacpypes3's form, e.g. ``192.168.1.20/24`` on a plant network or
    ``127.0.0.1/8:47809`` on one machine (the mask form also opens the broadcast socket).
    """

    def __init__(self, local_address: str | None = None, instance: int = 4194000, name: str = "retrofit") -> None:
        self.local_address = local_address or f"127.0.0.1/8:{free_udp_port()}"
        self.instance = instance
        self.name = name
        self.app: Application | None = None
        self.users = 0

    def start(self) -> Application:
        if self.app is None:
            args = SimpleArgumentParser().parse_args(
                ["--address", self.local_address, "--instance", str(self.instance), "--name", self.name])
            self.app = Application.from_args(args)
        return self.app

    def close(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None


def make_driver(ctx: DriverContext, device_key: str, device: Device, points: Sequence[PointRef]) -> BacnetDriver:
    """The registry's factory: every BACnet device of a collector shares one BACnet application (one UDP port);
    points with ``cov: true`` are subscribed when the collector starts pushes (unless ``ctx.cov`` is off)."""
    client = ctx.shared("bacnet-client", lambda: BacnetClient(ctx.bacnet_local))
    cov = [BacnetPlanned(r.key, r.point.bacnet.object_type, r.point.bacnet.instance, r.point.bacnet.property,
                         r.point.range)
           for r in points if ctx.cov and r.point.bacnet is not None and r.point.bacnet.cov]
    return BacnetDriver(device_key, device, client, cov_points=cov, cov_lifetime_s=ctx.cov_lifetime_s)


class BacnetDriver(Driver[BacnetRead]):
    """Reads planned BACnet requests from one device; never writes (see ``write_point`` for the audited path)."""

    def __init__(self, device_key: str, device: Device, client: BacnetClient,
                 cov_points: Sequence[BacnetPlanned] = (), cov_lifetime_s: int = COV_LIFETIME_S) -> None:
        self.name = device_key
        self.cov = CovSubscriptions(self, list(cov_points), cov_lifetime_s)
        self.requests = 0  # read requests sent (RPM or ReadProperty); SubscribeCOVs are counted by self.cov
        self.device = device
        self.client = client
        self.address = f"{device.host}:{device.port or device.default_port}"
        self.use_rpm = device.rpm
        self.rpm_limit: int | None = None  # learned when the device aborts an answer too big for one APDU
        self._addr = Address(self.address)
        self._vendor_info: Any = None
        self._templates: dict[tuple[BacnetPlanned, ...], _RpmTemplate] = {}
        self._types: dict[tuple[Any, Any], Any] = {}
        self._bad: dict[str, str] = {}  # point key -> why it last read bad (logged once per reason)
        # RPMs the device fails as a whole for one bad property -> the halves read instead (see _split_rpm)
        self._rpm_parts: dict[tuple[BacnetPlanned, ...], tuple[BacnetRead, BacnetRead]] = {}
        self._rpm_part_of: set[tuple[BacnetPlanned, ...]] = set()

    async def open(self) -> None:
        self.client.start()

    async def close(self) -> None:
        await self.stop()

    async def start(self, emit: Emit) -> None:
        """Subscribe the device's COV points (the pushed side of this driver, see bacnet_cov.py)."""
        self.cov.start(emit)

    async def stop(self) -> None:
        await self.cov.stop()

    def stats(self) -> dict[str, Any] | None:
        return {**self.cov.stats(), "requests": self.requests} if self.cov.points else None

    def _label(self) -> str:
        return f"BACnet device {self.name} (instance {self.device.device_instance}) at {self.address}"

    async def _bounded(self, coro: Any, what: str) -> Any:
        """Await a bacpypes3 call within the device timeout; map its BaseException errors to DeviceErrors."""
        try:
            return await asyncio.wait_for(coro, self.device.timeout_s)
        except TimeoutError:
            raise DeviceTimeout(f"{self._label()}: no answer to {what} within {self.device.timeout_s:g} s; check "
                                f"the address, device_instance and that it is on the network") from None
        except ErrorRejectAbortNack as err:  # a BaseException: must be named to be caught
            raise BacnetReply(err, f"{self._label()}: {what}: {describe_error(err)}") from None
        except OSError as exc:
            raise DeviceUnreachable(f"{self._label()}: {exc}") from None

    async def read(self, request: BacnetRead) -> list[Reading]:
        if self.cov.covered:  # points with a live COV subscription are not polled
            points = tuple(p for p in request.points if p.key not in self.cov.covered)
            if not points:
                return []
            if len(points) != len(request.points):
                request = BacnetRead(request.rpm, points)
        app = self.client.start()
        if request.rpm and self.use_rpm:
            parts = self._rpm_parts.get(request.points)
            if parts is not None:
                return [r for part in parts for r in await self.read(part)]
            if self.rpm_limit is not None and len(request.points) > self.rpm_limit:
                out: list[Reading] = []
                for i in range(0, len(request.points), self.rpm_limit):
                    out.extend(await self.read(BacnetRead(True, request.points[i:i + self.rpm_limit])))
                return out
            try:
                return await self._read_rpm(app, request)
            except BacnetReply as exc:
                if exc.too_big and len(request.points) > 1:
                    # The answer does not fit one APDU and the device cannot segment: halve the request size
                    # and remember it for the rest of the run.
                    self.rpm_limit = max(1, len(request.points) // 2)
                    log.warning("%s; using RPMs of at most %d properties (lower max_points or set segmentation: "
                                "false in the site file)", exc, self.rpm_limit)
                    return await self.read(request)
                if exc.point_error:
                    return await self._split_rpm(request, exc)
                if not exc.rejects_rpm:
                    raise
                self.use_rpm = False
                log.warning("%s; switching this device to ReadProperty (set rpm: false in the site file to skip "
                            "this probe)", exc)
        return await self._read_each(app, request.points)

    async def _split_rpm(self, request: BacnetRead, exc: BacnetReply) -> list[Reading]:
        """Some controllers answer a whole RPM with an Error (unknown-object, read-access-denied ...) when one of
        its properties fails, instead of inline: halve the request until the failing point is alone (it reads
        BAD), and keep the halves for later polls, so the other points read every poll."""
        if len(request.points) == 1:
            return [self._bad_point(request.points[0], describe_error(exc.err), time.time())]
        if request.points not in self._rpm_part_of:
            log.warning("%s; this device fails a whole RPM for one bad property: splitting it to find the point "
                        "(kept for this run)", exc)
        half = len(request.points) // 2
        parts = (BacnetRead(True, request.points[:half]), BacnetRead(True, request.points[half:]))
        self._rpm_parts[request.points] = parts
        self._rpm_part_of.update(p.points for p in parts)
        return [r for part in parts for r in await self.read(part)]

    def _rpm_template(self, points: tuple[BacnetPlanned, ...]) -> _RpmTemplate:
        """The request encoded once per planned RPM (the plan does not change between polls), and how to find
        each point in the answer. bacpypes3 would rebuild and re-encode ~3 objects per property every poll."""
        tpl = self._templates.get(points)
        if tpl is None:
            from bacpypes3.apdu import ReadAccessSpecification, ReadPropertyMultipleRequest
            from bacpypes3.basetypes import PropertyIdentifier, PropertyReference
            from bacpypes3.constructeddata import SequenceOf
            from bacpypes3.primitivedata import ObjectIdentifier

            specs: dict[tuple[str, int], ReadAccessSpecification] = {}
            for p in points:
                spec = specs.get((p.object_type, p.instance))
                if spec is None:
                    spec = specs[(p.object_type, p.instance)] = ReadAccessSpecification(
                        objectIdentifier=ObjectIdentifier(p.object_id), listOfPropertyReferences=[])
                spec.listOfPropertyReferences.append(
                    PropertyReference(propertyIdentifier=PropertyIdentifier(p.property)))
            encoded = ReadPropertyMultipleRequest(
                listOfReadAccessSpecs=SequenceOf(ReadAccessSpecification)(list(specs.values()))).encode()
            where = {(p.object_type, p.instance, p.property): i for i, p in enumerate(points)}
            tpl = self._templates[points] = _RpmTemplate(encoded, where)
        return tpl

    def _property_type(self, object_type: Any, prop: Any) -> Any:
        """The datatype of a property (from the device's vendor info), cached: how an Any value is cast out."""
        key = (object_type, prop)
        kind = self._types.get(key, _MISSING)
        if kind is _MISSING:
            cls = self._vendor_info.get_object_class(object_type)
            kind = self._types[key] = cls.get_property_type(prop) if cls is not None else None
        return kind

    async def _read_rpm(self, app: Application, request: BacnetRead) -> list[Reading]:
        """One planned ReadPropertyMultiple: the pre-encoded request goes through bacpypes3's own transaction
        machinery (invoke ids, segmentation, retries), the decoded ACK is mapped straight onto the plan."""
        from bacpypes3.apdu import ConfirmedRequestPDU, ReadPropertyMultipleACK

        if self._vendor_info is None:
            self._vendor_info = await self._bounded(app.get_vendor_info(device_address=self._addr), "vendor lookup")
        tpl = self._rpm_template(request.points)
        pdu = ConfirmedRequestPDU()
        pdu.update(tpl.encoded)
        pdu.put_data(tpl.encoded.pduData)
        pdu.pduDestination = self._addr
        pdu.apduInvokeID = None  # Application.request assigns a free one
        self.requests += 1
        result = await self._bounded(app.request(pdu), f"ReadPropertyMultiple of {len(request.points)} properties")
        ts = time.time()
        if isinstance(result, ErrorRejectAbortNack):
            raise BacnetReply(result, f"{self._label()}: ReadPropertyMultiple: {describe_error(result)}")
        if not isinstance(result, ReadPropertyMultipleACK):
            raise DeviceProtocolError(f"{self._label()}: ReadPropertyMultiple got an unexpected answer "
                                      f"({type(result).__name__})")
        points = request.points
        values: list[Any] = [_MISSING] * len(points)
        for access in result.listOfReadAccessResults:
            otype, inst = access.objectIdentifier
            for element in access.listOfResults or ():
                prop = element.propertyIdentifier
                i = tpl.where.get((str(otype), int(inst), str(prop)))
                if i is None or element.propertyArrayIndex is not None:
                    continue  # not something we asked for
                rr = element.readResult
                if rr.propertyAccessError is not None:
                    values[i] = rr.propertyAccessError
                    continue
                kind = self._property_type(otype, prop)
                values[i] = rr.propertyValue.cast_out(kind) if kind is not None else None
        out: list[Reading] = []
        for p, value in zip(points, values, strict=True):
            if value is _MISSING or isinstance(value, ErrorType):
                why = "missing from the answer" if value is _MISSING else \
                    f"{getattr(value, 'errorClass', '?')}: {getattr(value, 'errorCode', '?')}"
                out.append(self._bad_point(p, why, ts))
                continue
            out.append(self._reading(p, value, ts))
        return out

    def _reading(self, p: BacnetPlanned, raw: Any, ts: float) -> Reading:
        if self._bad and p.key in self._bad:
            del self._bad[p.key]
            log.info("%s: %s %s reads again", self._label(), p.object_id, p.property)
        value = bacnet_value(raw)
        return Reading(p.key, ts, value, judge(value, p.range))

    def _bad_point(self, p: BacnetPlanned, why: str, ts: float) -> Reading:
        """A property the device answered with an error: a BAD reading every poll, a warning only when the
        reason is new (a point that stays bad must not log once a poll)."""
        if self._bad.get(p.key) != why:
            self._bad[p.key] = why
            log.warning("%s: %s %s: %s%s", self._label(), p.object_id, p.property, why, point_hint(why))
        return Reading(p.key, ts, None, Quality.BAD)

    async def _read_each(self, app: Application, points: tuple[BacnetPlanned, ...]) -> list[Reading]:
        out: list[Reading] = []
        answered = 0
        last: BacnetReply | None = None
        for p in points:
            self.requests += 1
            try:
                raw = await self._bounded(app.read_property(Address(self.address), p.object_id, p.property),
                                          f"ReadProperty {p.object_id} {p.property}")
            except BacnetReply as exc:  # an error for this property only: a bad reading, not a failed poll
                last = exc
                answered += 1
                out.append(self._bad_point(p, describe_error(exc.err), time.time()))
                continue
            answered += 1
            if isinstance(raw, ErrorRejectAbortNack):
                out.append(self._bad_point(p, describe_error(raw), time.time()))
                continue
            out.append(self._reading(p, raw, time.time()))
        if last is not None and answered == len(points) and all(r.quality is Quality.BAD for r in out):
            raise last  # every property failed: report the device error, not just bad points
        return out

    def subscribe_cov(self, points: list[BacnetPlanned], emit: Callable[[list[Reading]], Any],
                      lifetime_s: int = COV_LIFETIME_S) -> None:
        """COV for these points now (what ``start`` does for the site's ``cov: true`` points)."""
        self.cov = CovSubscriptions(self, points, lifetime_s)
        self.cov.start(emit)


class _Missing:
    pass


@dataclass(frozen=True, slots=True)
class _RpmTemplate:
    """A planned RPM encoded once, and where each (object type, instance, property) goes in the plan."""

    encoded: Any  # a ConfirmedRequestPDU without destination or invoke id
    where: dict[tuple[str, int, str], int]


_MISSING = _Missing()


class BacnetReply(DeviceProtocolError):
    """The device answered Error, Reject or Abort to a whole request."""

    def __init__(self, err: BaseException, message: str) -> None:
        super().__init__(message)
        self.err = err

    @property
    def rejects_rpm(self) -> bool:
        """Reject/Abort unrecognized-service, or (some controllers) Error class services refusing the service."""
        if isinstance(self.err, RejectPDU | AbortPDU):
            reason = str(getattr(self.err, "apduAbortRejectReason", ""))
            return any(r in reason for r in RPM_UNSUPPORTED)
        return (str(getattr(self.err, "errorClass", "")) == "services"
                and str(getattr(self.err, "errorCode", "")) in RPM_REFUSED_CODES)

    @property
    def point_error(self) -> bool:
        """An Error about an object or a property (not the service): one of the request's points is at fault."""
        return not isinstance(self.err, RejectPDU | AbortPDU) and \
            str(getattr(self.err, "errorClass", "")) in ("object", "property")

    @property
    def too_big(self) -> bool:
        if not isinstance(self.err, RejectPDU | AbortPDU):
            return False
        reason = str(getattr(self.err, "apduAbortRejectReason", ""))
        return any(r in reason for r in TOO_BIG)
