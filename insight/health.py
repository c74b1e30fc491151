"""Device health (read model, for the building page): the collector's own status file when it is there, else
derived from the latest readings' quality and age.

The collector writes ``collector-status.json`` into the data dir (a file contract, so the dashboard does not
import the collectors package). Without it, a device is ``ok`` when all its points' last readings are good and
fresh (younger than three poll intervals), ``offline`` when none is, ``degraded`` in between.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from buildings.site import PointRef
from telemetry.reading import Reading

STATUS_FILE = "collector-status.json"


class DeviceHealth(StrEnum):
    """The poll loop's health states (collectors.poller.Health) plus ``unknown``: no reading and no status."""

    OK = "ok"
    DEGRADED = "degraded"
    OFFLINE = "offline"
    STARTING = "starting"
    UNKNOWN = "unknown"


def collector_status(data_dir: Path) -> dict[str, DeviceHealth]:
    """device key -> health from the collector's status file ({} when there is none or it is unreadable)."""
    try:
        raw: Any = json.loads((Path(data_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    devices = raw.get("devices", {}) if isinstance(raw, dict) else {}
    items = devices.values() if isinstance(devices, dict) else devices
    out: dict[str, DeviceHealth] = {}
    known = {h.value for h in DeviceHealth}
    for d in items:
        if isinstance(d, dict) and d.get("device") and d.get("health"):
            h = str(d["health"])
            out[str(d["device"])] = DeviceHealth(h) if h in known else DeviceHealth.UNKNOWN
    return out


def derived_health(refs: list[PointRef], latest: dict[str, Reading], now: float) -> dict[str, DeviceHealth]:
    """device key -> ok / degraded / offline / unknown, from reading quality and age."""
    by_dev: dict[str, list[bool]] = {}
    for r in refs:
        key = f"{r.building.id}/{r.device.id}"
        rd = latest.get(r.key)
        if rd is None:
            by_dev.setdefault(key, [])
            continue
        interval = r.point.poll_interval_s or r.device.poll_interval_s
        by_dev.setdefault(key, []).append(rd.good and now - rd.ts <= 3 * interval + 60)
    out = {}
    for key, flags in by_dev.items():
        if not flags:
            out[key] = DeviceHealth.UNKNOWN
        elif all(flags):
            out[key] = DeviceHealth.OK
        elif any(flags):
            out[key] = DeviceHealth.DEGRADED
        else:
            out[key] = DeviceHealth.OFFLINE
    return out


def device_health(refs: list[PointRef], latest: dict[str, Reading], now: float,
                  data_dir: Path) -> dict[str, DeviceHealth]:
    """device key -> health of the devices behind ``refs``: the collector's word where it has one, else derived."""
    out = derived_health(refs, latest, now)
    out.update({k: v for k, v in collector_status(data_dir).items() if k in out})
    return out
