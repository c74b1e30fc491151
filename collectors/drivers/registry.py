"""Protocol name -> driver factory: the one place a protocol is plugged into the collector (Telegraf's
``inputs.Add``). Adding a protocol is a module in this package with a ``make_driver`` and one line here.

A factory is ``make_driver(ctx, device_key, device, points) -> Driver``. It may return the same driver for
several devices that share one connection (MQTT: one client per broker); the collector starts each driver once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from buildings.site import Device, PointRef
from collectors.drivers import bacnet, modbus, mqtt
from collectors.drivers.base import DeviceError, Driver, DriverContext

DriverFactory = Callable[[DriverContext, str, Device, Sequence[PointRef]], Driver[Any]]

DRIVERS: dict[str, DriverFactory] = {
    "modbus": modbus.make_driver,
    "modbus-rtu": modbus.make_driver,
    "bacnet": bacnet.make_driver,
    "mqtt": mqtt.make_driver,
}


def make_driver(ctx: DriverContext, device_key: str, device: Device, points: Sequence[PointRef]) -> Driver[Any]:
    """The driver of one device, from the registry; a clear error for a protocol nobody registered."""
    factory = DRIVERS.get(str(device.protocol))
    if factory is None:
        raise DeviceError(f"device {device_key}: no driver for protocol {device.protocol!s}; "
                          f"known: {', '.join(sorted(DRIVERS))}")
    return factory(ctx, device_key, device, points)
