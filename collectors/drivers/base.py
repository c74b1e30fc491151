"""The one driver interface every protocol implements, polled or pushed, and what drivers share per collector.

Like a Telegraf input, a driver knows how to talk to one device (or one broker) and nothing else; scheduling,
retries, health and delivery belong to the poll loop and the pipeline. The interface:

- ``open()`` / ``read(planned request)`` / ``close()``: polled readings. The poll loop calls ``read`` on its
  schedule. A driver raises a ``DeviceError`` subclass when a whole request failed (the poll loop turns that into
  COMM_FAILURE readings and a health change); a per-point problem (a BACnet property error, a NaN) comes back as
  a bad-quality Reading instead. A push-only driver (MQTT) never gets a ``read``.
- ``start(emit)`` / ``stop()``: pushed readings (MQTT subscriptions, BACnet change-of-value). The collector calls
  ``start`` once with the pipeline's ``emit`` and ``stop`` at shutdown; a polled-only driver keeps the no-op
  defaults.
- ``stats()``: counters of the pushed side for the status file (None when the driver pushes nothing).

Drivers come from ``collectors/drivers/registry.py`` (protocol name -> factory). A factory gets a
``DriverContext``: the collector's options plus ``shared(key, make)``, where drivers keep what several devices
share (a Modbus gateway's connection pool, the one BACnet application, an MQTT client per broker).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from telemetry.reading import Reading

RequestT = TypeVar("RequestT", contravariant=True)
T = TypeVar("T")
Emit = Callable[[list[Reading]], Awaitable[None]]


class DeviceError(Exception):
    """A request to a device failed as a whole; the message names the device and says what to check."""


class DeviceUnreachable(DeviceError):
    """No connection (refused, reset, closed): reconnect with backoff."""


class DeviceTimeout(DeviceError):
    """The device did not answer within its timeout."""


class DeviceProtocolError(DeviceError):
    """The device answered, but with an exception/error/reject/abort or an undecodable frame."""


class Driver(Protocol[RequestT]):
    """One device's (or one broker's) connection. Nothing here writes to a device.

    Subclass it with the driver's request type (``Driver[ModbusRead]``) to inherit the no-op defaults."""

    name: str

    async def open(self) -> None:
        """Connect (raises DeviceUnreachable); safe to call again after a failure."""

    async def read(self, request: RequestT) -> list[Reading]:
        """Read one planned request; one Reading per planned point, or raise DeviceError."""
        raise NotImplementedError(f"{type(self).__name__} is push-only: it has nothing to poll")

    async def close(self) -> None:
        """Release the polled connection; never raises."""

    async def start(self, emit: Emit) -> None:
        """Begin pushing readings (subscriptions) through ``emit``; never raises for a device problem."""

    async def stop(self) -> None:
        """End every subscription; never raises."""

    def stats(self) -> dict[str, Any] | None:
        """Counters of the pushed side (subscriptions, messages accepted/rejected) for the status file."""
        return None


@dataclass
class DriverContext:
    """What a driver factory gets from the collector: its options and the resources drivers share."""

    bacnet_local: str | None = None  # our BACnet address (bacpypes3 form), None: a free port on 127.0.0.1/8
    mqtt_url: str | None = None  # the site's broker for MQTT sensors, None: each device's host:port
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    cov: bool = True  # subscribe to BACnet change-of-value where a point asks for it
    cov_lifetime_s: int = 300  # BACnet COV subscription lifetime (renewed at 3/4 of it)
    options: dict[str, Any] = field(default_factory=dict)  # a new driver's own options
    _shared: dict[Any, Any] = field(default_factory=dict, repr=False)

    def shared(self, key: Any, make: Callable[[], T]) -> T:
        """The resource stored under ``key``, made on first use (one per collector)."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Close every shared resource that has ``close`` (sync or async) once the drivers are done."""
        for res in reversed(list(self._shared.values())):
            closer = getattr(res, "close", None)
            if closer is None:
                continue
            try:
                out = closer()
                if inspect.isawaitable(out):
                    await out
            except Exception:  # noqa: BLE001 - shutting down: one resource failing to close must not stop the others
                pass
        self._shared.clear()
