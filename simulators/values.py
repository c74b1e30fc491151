"""The contract between a simulated building's physics and the protocol servers that expose it.

The physics (simulators/physics.py and friends) implements ValueSource; the servers (simulators/servers/)
only ever call these methods. A simulator is a device: it never imports collectors.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, runtime_checkable


class DeviceMode(StrEnum):
    """How a simulated device behaves on the wire right now (set by fault scenarios)."""

    OK = "ok"
    OFFLINE = "offline"  # stops answering: accepts nothing / drops requests
    ERRORS = "errors"  # answers protocol errors (Modbus exception 4, BACnet Error)
    GARBAGE = "garbage"  # answers malformed frames


@runtime_checkable
class ValueSource(Protocol):
    """Current values of a simulated site, in engineering units, by point key ("building/point")."""

    def value(self, point_key: str) -> float | str | None:
        """The point's present value as the physics (plus active faults) says now; None if unknown."""

    def device_mode(self, device_key: str) -> DeviceMode:
        """How the device ("building/device") should behave on the wire now."""

    def now(self) -> float:
        """The simulation clock, UTC epoch seconds (may run faster than real time)."""
