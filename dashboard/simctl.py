"""Start, stop and steer simulated buildings from the dashboard, one `retrofit simulate` process per building.

The dashboard does not import the simulators package (it is a device, the dashboard a client): it starts
`retrofit simulate --site <building file> --free-ports --control-file F` as a subprocess and speaks the
simulator's control protocol with the one client, buildings/simcontrol (JSON lines over TCP on 127.0.0.1, port,
token and pid from the control file). Only processes this module started (their pid is in their control file)
are stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildings.simcontrol import ControlError, control_request, read_control_file

# The simulator validates the kind and answers with the list of known kinds when one is wrong.
FAULT_KINDS = ("sensor_stuck", "sensor_drift", "sensor_spike", "device_offline", "device_errors", "device_garbage",
               "after_hours_hvac", "simultaneous_heat_cool", "stuck_oa_damper", "dsp_not_met",
               "switch_room_overheat", "co_garage", "co2_high", "water_leak", "smoke", "gas_leak",
               "voltage_unbalance", "meter_spike", "meter_counter_reset")


class SimControlError(ControlError):
    """The simulator cannot be reached or refused the request; the message says why."""


@dataclass(frozen=True)
class SimStatus:
    building: str
    running: bool
    pid: int | None
    faults: list[dict[str, Any]]
    error: str | None = None


class SimControl:
    """Simulators of one data dir: control files in DATA_DIR/dashboard-sim/<building>.json."""

    def __init__(self, data_dir: Path, timeout_s: float = 5.0) -> None:
        self.dir = Path(data_dir) / "dashboard-sim"
        self.timeout_s = timeout_s

    def control_file(self, building: str) -> Path:
        return self.dir / f"{building}.json"

    def _read(self, building: str) -> dict[str, Any] | None:
        try:
            return read_control_file(self.control_file(building))
        except ControlError:
            return None

    def request(self, building: str, req: dict[str, Any]) -> dict[str, Any]:
        """One request to this building's simulator; SimControlError when it is not running or refuses."""
        if not self.control_file(building).exists():
            raise SimControlError(f"{building}: no simulator running (no control file)")
        try:
            answer = control_request(self.control_file(building), req, timeout=self.timeout_s)
        except ControlError as exc:
            raise SimControlError(f"{building}: {exc}") from None
        if not answer.get("ok"):
            raise SimControlError(str(answer.get("error", "refused")))
        return answer

    def status(self, building: str) -> SimStatus:
        data = self._read(building)
        if data is None:
            return SimStatus(building, False, None, [])
        try:
            faults = self.request(building, {"op": "list"}).get("faults", [])
        except SimControlError as exc:
            return SimStatus(building, False, data.get("pid"), [], str(exc))
        return SimStatus(building, True, data.get("pid"), faults)

    def start(self, building: str, site_file: str, wait_s: float = 60.0) -> SimStatus:
        """Start `retrofit simulate` for one building file and wait until its control endpoint answers."""
        if self.status(building).running:
            return self.status(building)
        self.dir.mkdir(parents=True, exist_ok=True)
        ctl = self.control_file(building)
        log = open(self.dir / f"{building}.log", "ab")  # noqa: SIM115 - held by the child
        subprocess.Popen([sys.executable, "-m", "retrofit.cli", "simulate", "--site", site_file, "--free-ports",
                          "--control-file", str(ctl)], stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            st = self.status(building)
            if st.running:
                return st
            time.sleep(0.3)
        raise SimControlError(f"{building}: the simulator did not start within {wait_s:.0f} s; see "
                              f"{self.dir / (building + '.log')}")

    def stop(self, building: str, wait_s: float = 15.0) -> None:
        """SIGTERM the simulator recorded in this building's control file (one the dashboard started)."""
        data = self._read(building)
        if data is None or not data.get("pid"):
            return
        pid = int(data["pid"])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.control_file(building).unlink(missing_ok=True)
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and self.control_file(building).exists():
            time.sleep(0.2)
        self.control_file(building).unlink(missing_ok=True)

    def inject(self, building: str, kind: str, target: str, duration_s: float | None = None) -> dict[str, Any]:
        return self.request(building, {"op": "inject", "kind": kind, "target": target, "duration_s": duration_s,
                                       "params": {}})["fault"]

    def clear(self, building: str, fault_id: str) -> list[dict[str, Any]]:
        return self.request(building, {"op": "clear", "id": fault_id})["cleared"]
