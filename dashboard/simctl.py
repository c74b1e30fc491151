"""A small client for the simulator's HTTP control endpoint (`retrofit simulate --control PORT`)."""

from __future__ import annotations

from typing import Any

import requests


class SimControlError(RuntimeError):
    """The control endpoint is unreachable or refused the request; the message says which."""


class SimControl:
    def __init__(self, url: str, timeout_s: float = 3.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            r = requests.request(method, f"{self.url}{path}", json=body, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise SimControlError(f"{self.url}: {type(exc).__name__}") from None
        if r.status_code >= 400:
            raise SimControlError(f"{self.url}{path}: HTTP {r.status_code} {r.text[:200]}")
        return r.json() if r.content else None

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def start(self, building: str) -> Any:
        return self._call("POST", f"/buildings/{building}/start")

    def stop(self, building: str) -> Any:
        return self._call("POST", f"/buildings/{building}/stop")

    def inject(self, building: str, scenario: str) -> Any:
        return self._call("POST", "/faults", {"building": building, "scenario": scenario})

    def clear(self, building: str, fault_id: str) -> Any:
        return self._call("DELETE", f"/faults/{fault_id}")
