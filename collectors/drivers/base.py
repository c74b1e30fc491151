"""The driver interface every polled protocol implements: open, read a planned request, close.

Like a Telegraf input, a driver knows how to talk to one device and nothing else; scheduling, retries, health
and delivery belong to the poll loop and the pipeline. A driver raises a ``DeviceError`` subclass when a whole
request failed (the poll loop turns that into COMM_FAILURE readings and a health change); a per-point problem
(a BACnet property error, a NaN) comes back as a bad-quality Reading instead.
"""

from __future__ import annotations

from typing import Protocol

from collectors.planner import Read
from telemetry.reading import Reading


class DeviceError(Exception):
    """A request to a device failed as a whole; the message names the device and says what to check."""


class DeviceUnreachable(DeviceError):
    """No connection (refused, reset, closed): reconnect with backoff."""


class DeviceTimeout(DeviceError):
    """The device did not answer within its timeout."""


class DeviceProtocolError(DeviceError):
    """The device answered, but with an exception/error/reject/abort or an undecodable frame."""


class Driver(Protocol):
    """One device's connection. ``read`` never writes to the device."""

    name: str

    async def open(self) -> None:
        """Connect (raises DeviceUnreachable); safe to call again after a failure."""

    async def read(self, request: Read) -> list[Reading]:
        """Read one planned request; one Reading per planned point, or raise DeviceError."""

    async def close(self) -> None:
        """Release the connection; never raises."""
