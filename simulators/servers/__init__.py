"""Protocol servers that expose any ValueSource as real devices: Modbus TCP, BACnet/IP, MQTT sensors.

Each server only calls the ValueSource contract (simulators/values.py); it never knows the physics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Endpoint:
    """One thing a simulator serves, as `retrofit simulate --list-endpoints --json` prints it."""

    protocol: str  # modbus | bacnet | mqtt
    host: str
    port: int | None
    building: str
    device: str
    unit_id: int | None = None
    device_instance: int | None = None
    topic: str | None = None
    points: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.host}:{self.port}"
        ident = (f"unit {self.unit_id}" if self.protocol == "modbus" else
                 f"device {self.device_instance}" if self.protocol == "bacnet" else f"topic {self.topic}")
        return f"{self.protocol:6s} {where:21s} {ident:18s} {self.building}/{self.device} ({self.points} points)"
