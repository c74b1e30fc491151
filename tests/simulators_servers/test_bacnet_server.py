"""The BACnet/IP simulator over real UDP sockets, read by a plain bacpypes3 client application."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bacpypes3.app import Application
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import ObjectIdentifier

from buildings.site import Site, load_site
from retrofit.devservers import free_udp_port
from simulators.servers.bacnet import BacnetDeviceServer, start_bacnet
from simulators.values import DeviceMode
from tests.simulators_servers.conftest import DictValues, write_site

pytestmark = pytest.mark.anyio

N_BIG = 120  # analog inputs on ddc1: an RPM of all of them needs segmentation
N_NOSEG = 300  # on ddc2: its object-list (5 bytes an id) does not fit the client's 1476-byte APDU


def bacnet_site(dir_: Path) -> tuple[Site, DictValues]:
    devices = [{"id": "ddc1", "protocol": "bacnet", "port": 47809, "device_instance": 1001},
               {"id": "ddc2", "protocol": "bacnet", "port": 47810, "device_instance": 1002, "rpm": False,
                "segmentation": False, "max_apdu": 206}]
    pts: list[dict[str, Any]] = [
        {"id": "fan", "name": "Fan status", "brick": "Supply_Fan_Status", "unit": "bool",
         "bacnet": {"device": "ddc1", "object_type": "binary-input", "instance": 1}},
        {"id": "mode", "name": "Mode", "brick": "Supply_Fan_Status", "unit": "bool",
         "bacnet": {"device": "ddc1", "object_type": "multi-state-value", "instance": 2}},
        {"id": "energy", "name": "Energy", "brick": "Active_Power_Sensor", "unit": "kW",
         "bacnet": {"device": "ddc1", "object_type": "accumulator", "instance": 3}},
        {"id": "sp", "name": "Setpoint", "brick": "Supply_Air_Temperature_Setpoint", "unit": "degC",
         "bacnet": {"device": "ddc1", "object_type": "analog-value", "instance": 4}},
    ]
    want: dict[str, float | str | None] = {"b1/fan": 1.0, "b1/mode": 3.0, "b1/energy": 1234.0, "b1/sp": None}
    for i in range(N_BIG):
        pts.append({"id": f"t{i}", "name": f"Temperature {i}", "brick": "Zone_Air_Temperature_Sensor", "unit": "degC",
                    "bacnet": {"device": "ddc1", "object_type": "analog-input", "instance": 100 + i}})
        want[f"b1/t{i}"] = 20.0 + i / 8
    for i in range(N_NOSEG):
        pts.append({"id": f"u{i}", "name": f"Temp {i}", "brick": "Zone_Air_Temperature_Sensor", "unit": "degC",
                    "bacnet": {"device": "ddc2", "object_type": "analog-input", "instance": i}})
        want[f"b1/u{i}"] = 18.5
    return load_site(str(write_site(dir_, devices, pts))).with_free_ports(), DictValues(want)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def bacnet(tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[tuple[Application, list[BacnetDeviceServer], DictValues]]:
    """Two devices (420 objects) shared by the module's tests; each test puts back what it changes."""
    site, vals = bacnet_site(tmp_path_factory.mktemp("bacnet"))
    servers = await start_bacnet(site, vals, refresh_s=0)
    client = Application.from_object_list([
        DeviceObject(objectIdentifier=("device", 4000001), objectName="test-client"),
        NetworkPortObject(f"127.0.0.1/8:{free_udp_port()}", objectIdentifier=("network-port", 1),
                          objectName="NetworkPort-1")])
    yield client, servers, vals
    client.close()
    for s in servers:
        await s.stop()


def addr(server: BacnetDeviceServer) -> Address:
    return Address(f"127.0.0.1:{server.port}")


async def test_read_property_multiple_present_value_units_flags(bacnet: Any) -> None:
    client, servers, vals = bacnet
    res = await asyncio.wait_for(client.read_property_multiple(addr(servers[0]), [
        "analog-input,100", ["present-value", "units", "status-flags", "object-name", "description"],
        "binary-input,1", ["present-value"], "multi-state-value,2", ["present-value"],
        "accumulator,3", ["present-value"], "analog-value,4", ["status-flags", "reliability"]]), 5)
    got = {(str(o[0]) + "," + str(o[1]), str(p)): v for o, p, _i, v in res}
    assert got[("analog-input,100", "present-value")] == pytest.approx(20.0)
    assert str(got[("analog-input,100", "units")]) == "degrees-celsius"
    assert list(got[("analog-input,100", "status-flags")]) == [0, 0, 0, 0]
    assert got[("analog-input,100", "object-name")] == "t0"
    assert str(got[("binary-input,1", "present-value")]) == "active"
    assert got[("multi-state-value,2", "present-value")] == 3
    assert got[("accumulator,3", "present-value")] == 1234
    assert list(got[("analog-value,4", "status-flags")]) == [0, 1, 0, 0]  # no value: fault
    assert str(got[("analog-value,4", "reliability")]) == "no-sensor"
    vals.values["b1/t0"] = 21.14
    pv = await asyncio.wait_for(client.read_property(addr(servers[0]), "analog-input,100", "present-value"), 5)
    assert pv == pytest.approx(21.14, abs=1e-5)  # float32 on the wire
    vals.values["b1/t0"] = 20.0


async def test_rpm_fast_path_answers_as_bacpypes3_does(bacnet: Any) -> None:
    """The simulator answers named-property RPMs itself (SimApplication.do_ReadPropertyMultipleRequest): the same
    answer as bacpypes3's handler, which still serves 'all' and the wildcard device, and the same errors."""
    from bacpypes3.basetypes import ErrorType
    from bacpypes3.service.object import ReadWritePropertyMultipleServices

    client, servers, vals = bacnet
    request = ["analog-input,100", ["present-value", "units", "description"],
               "analog-input,99999", ["present-value"], "binary-input,1", ["present-value", "event-state"],
               "analog-value,4", ["status-flags", "reliability"], "binary-input,1", ["polarity", "priority-array"]]

    async def read() -> list[tuple[str, str, str]]:
        res = await asyncio.wait_for(client.read_property_multiple(addr(servers[0]), list(request)), 5)
        return [(f"{o[0]},{o[1]}", str(p), f"error {v.errorClass}: {v.errorCode}" if isinstance(v, ErrorType)
                 else str(v)) for o, p, _i, v in res]

    fast = await read()
    assert ("analog-input,99999", "present-value", "error object: unknown-object") in fast
    assert ("binary-input,1", "priority-array", "error property: unknown-property") in fast
    assert ("analog-input,100", "present-value", "20.0") in fast and len(fast) == 10
    # the same request through bacpypes3's own handler
    sim_app = servers[0].app
    own = ReadWritePropertyMultipleServices.do_ReadPropertyMultipleRequest
    sim_app.do_ReadPropertyMultipleRequest = lambda apdu: own(sim_app, apdu)  # type: ignore[method-assign]
    try:
        assert await read() == fast
    finally:
        del sim_app.do_ReadPropertyMultipleRequest
    # 'all' goes to bacpypes3's handler and still works
    res = await asyncio.wait_for(client.read_property_multiple(addr(servers[0]), ["analog-input,100", ["all"]]), 5)
    assert {"present-value", "object-name", "units"} <= {str(p) for _o, p, _i, _v in res}


async def test_present_value_encoder_answers_as_bacpypes3_does(bacnet: Any) -> None:
    """Present-value-only RP and RPM are answered by the simulator's direct encoder (every object kind): the same
    values as bacpypes3's own handlers give for the same requests."""
    client, servers, _vals = bacnet
    server = servers[0]
    objs = ["binary-input,1", "multi-state-value,2", "accumulator,3", "analog-value,4", "analog-input,100",
            "analog-input,119"]
    used: list[str] = []
    encoders = (server.present_values_rpm, server.present_value_rp)

    def spy_rpm(specs: Any) -> bytes | None:
        used.append("rpm")
        return encoders[0](specs)

    def spy_rp(oid: Any) -> bytes | None:
        used.append("rp")
        return encoders[1](oid)

    async def read() -> tuple[list[str], list[str]]:
        res = await asyncio.wait_for(client.read_property_multiple(
            addr(server), [x for o in objs for x in (o, ["present-value"])]), 5)
        singles = [await asyncio.wait_for(client.read_property(addr(server), o, "present-value"), 5) for o in objs]
        return [f"{o[0]},{o[1]} {p} {v}" for o, p, _i, v in res], [str(v) for v in singles]

    server.present_values_rpm, server.present_value_rp = spy_rpm, spy_rp  # type: ignore[method-assign]
    try:
        fast = await read()
        assert used.count("rpm") == 1 and used.count("rp") == len(objs)
        assert fast[1][0] == "active" and float(fast[1][4]) == 20.0 and fast[1][2] == "1234"
        server.present_values_rpm = lambda specs: None  # type: ignore[method-assign]
        server.present_value_rp = lambda oid: None  # type: ignore[method-assign]
        assert await read() == fast  # bacpypes3's own handlers
    finally:
        del server.present_values_rpm, server.present_value_rp


def test_decoded_requests_are_kept_by_their_bytes_with_each_requests_own_header() -> None:
    """The simulator's request decode cache: the same request bytes from two clients with two invoke ids decode
    to equal requests, each with its own header; a different request is decoded anew."""
    from bacpypes3.apdu import APCISequence, ConfirmedRequestPDU, ReadPropertyRequest

    def wire(oid: str, invoke_id: int, source: str) -> ConfirmedRequestPDU:
        req = ReadPropertyRequest(objectIdentifier=oid, propertyIdentifier="present-value")
        req.apduInvokeID = invoke_id
        pdu = req.encode()
        pdu.pduSource = Address(source)
        return pdu

    a = APCISequence.decode(wire("analog-input,7", 3, "127.0.0.1:50001"))
    b = APCISequence.decode(wire("analog-input,7", 9, "127.0.0.1:50002"))
    c = APCISequence.decode(wire("analog-input,8", 9, "127.0.0.1:50002"))
    assert (a.apduInvokeID, str(a.pduSource)) == (3, "127.0.0.1:50001")
    assert (b.apduInvokeID, str(b.pduSource)) == (9, "127.0.0.1:50002")
    assert a is not b and str(a.objectIdentifier) == str(b.objectIdentifier) == "analog-input,7"
    assert str(c.objectIdentifier) == "analog-input,8"


async def test_segmented_rpm_object_list_and_who_is(bacnet: Any) -> None:
    client, servers, vals = bacnet
    spec: list[Any] = []
    for i in range(N_BIG):
        spec += [f"analog-input,{100 + i}", ["present-value", "object-name"]]
    res = await asyncio.wait_for(client.read_property_multiple(addr(servers[0]), spec), 10)
    assert len(res) == 2 * N_BIG
    values = [v for _o, p, _i, v in res if str(p) == "present-value"]
    assert values == pytest.approx([20.0 + i / 8 for i in range(N_BIG)])
    objects = await asyncio.wait_for(client.read_property(addr(servers[0]), "device,1001", "object-list"), 5)
    assert len(objects) == N_BIG + 4 + 2  # points + device + network port
    assert await asyncio.wait_for(client.read_property(addr(servers[1]), "device,1002", "object-list", 0), 5) \
        == N_NOSEG + 2  # index 0 (the length) still works on the unsegmented device
    i_ams = await asyncio.wait_for(client.who_is(1001, 1001, addr(servers[0])), 5)
    assert [i.iAmDeviceIdentifier[1] for i in i_ams] == [1001]


async def test_rpm_false_and_no_segmentation(bacnet: Any) -> None:
    client, servers, vals = bacnet
    ddc2 = addr(servers[1])
    with pytest.raises(BaseException, match="unrecognized-service"):  # bacpypes3 errors are BaseExceptions
        await asyncio.wait_for(client.read_property_multiple(ddc2, ["analog-input,0", ["present-value"]]), 5)
    assert await asyncio.wait_for(client.read_property(ddc2, "analog-input,0", "present-value"), 5) == 18.5
    with pytest.raises(BaseException, match="segmentation-not-supported"):  # 302 ids need 1,510+ bytes
        await asyncio.wait_for(client.read_property(ddc2, "device,1002", "object-list"), 5)
    services = await asyncio.wait_for(client.read_property(ddc2, "device,1002", "protocol-services-supported"), 5)
    assert services[services.readPropertyMultiple] == 0 and services[services.readProperty] == 1
    assert str(await asyncio.wait_for(client.read_property(ddc2, "device,1002", "segmentation-supported"), 5)) \
        == "no-segmentation"


async def test_cov_subscription_notifies_changes(bacnet: Any) -> None:
    client, servers, vals = bacnet
    servers[0].refresh_s = 0.1
    old = vals.values["b1/t1"]
    # pass an ObjectIdentifier: bacpypes3 compares it with the notification's, and a str never matches
    async with client.change_of_value(addr(servers[0]), ObjectIdentifier("analog-input,101"), lifetime=60) as scm:
        # bacpypes3's client registers its context only after the subscribe ACK, so it may reject the initial
        # notification (a client race, not the server's); the change below must arrive regardless.
        vals.values["b1/t1"] = 30.0
        deadline = time.monotonic() + 5
        seen: list[Any] = []
        while time.monotonic() < deadline:
            prop, value = await asyncio.wait_for(scm.get_value(), 5)
            seen.append((str(prop), value))
            if str(prop) == "present-value" and value == pytest.approx(30.0):
                break
        assert ("present-value", pytest.approx(30.0)) in seen
    vals.values["b1/t1"] = old
    servers[0].refresh_s = 0


async def test_device_modes(bacnet: Any) -> None:
    client, servers, vals = bacnet
    a = addr(servers[0])
    vals.modes["b1/ddc1"] = DeviceMode.ERRORS
    with pytest.raises(BaseException, match="operational-problem"):
        await asyncio.wait_for(client.read_property(a, "analog-input,100", "present-value"), 5)
    vals.modes["b1/ddc1"] = DeviceMode.GARBAGE
    with pytest.raises(TimeoutError):  # a reply arrives but cannot be decoded: the request never completes
        await asyncio.wait_for(client.read_property(a, "analog-input,100", "present-value"), 1.5)
    vals.modes["b1/ddc1"] = DeviceMode.OFFLINE
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.read_property(a, "analog-input,100", "present-value"), 1.5)
    assert await asyncio.wait_for(client.who_is(1001, 1001, a, timeout=1), 3) == []  # no I-Am either
    # the other device is unaffected throughout
    assert await asyncio.wait_for(client.read_property(addr(servers[1]), "analog-input,0", "present-value"), 5) == 18.5
    vals.modes.clear()
    assert await asyncio.wait_for(client.read_property(a, "analog-input,100", "present-value"), 5) == 20.0


async def test_port_in_use_is_refused(bacnet: Any, tmp_path: Path) -> None:
    client, servers, vals = bacnet
    dup = BacnetDeviceServer("b1/dup", servers[0].device, [], vals)
    with pytest.raises(OSError, match="another BACnet application"):
        await dup.start()
