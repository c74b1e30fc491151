"""The collector of a site: a driver per device from the registry, a poll loop per polled device, pushed
readings (MQTT sensors, BACnet COV) through the same drivers, the pipeline, a status file.

``Collector(site, sinks).run(stop)`` runs until ``stop`` is set, then shuts down cleanly: poll loops finish
their current request, MQTT clients disconnect, the pipeline delivers everything it holds to every sink, and
a last status file is written. Nothing here ever writes to a device.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from buildings.site import PointRef, Site
from collectors.drivers.base import DeviceError, Driver, DriverContext
from collectors.drivers.registry import make_driver
from collectors.pipeline import STATUS_FILE, Pipeline, Sink, write_status
from collectors.planner import DevicePlan, plan_site
from collectors.poller import DevicePoller, DeviceStatus

log = logging.getLogger("collectors")


class Collector:
    """Runs every device of a site until stopped."""

    def __init__(self, site: Site, sinks: Sequence[Sink], *, mqtt_url: str | None = None,
                 mqtt_username: str | None = None, mqtt_password: str | None = None,
                 bacnet_local: str | None = None, data_dir: Path | None = None, status_interval_s: float = 5.0,
                 on_status: Callable[[DeviceStatus], None] | None = None, keep_poll_starts: int = 0,
                 jitter: float = 0.02, offline_after: int = 2, backoff_max_s: float = 300.0, cov: bool = True,
                 cov_lifetime_s: int = 300, plans: dict[str, DevicePlan] | None = None) -> None:
        self.site = site
        from collectors.pipeline import learned_plan_changes  # the reads an earlier run had to re-split

        self.plans = plans if plans is not None else plan_site(site, learned_plan_changes(data_dir))
        self.sinks = list(sinks)
        self.context = DriverContext(bacnet_local=bacnet_local, mqtt_url=mqtt_url, mqtt_username=mqtt_username,
                                     mqtt_password=mqtt_password, cov=cov, cov_lifetime_s=cov_lifetime_s)
        self.status_path = Path(data_dir) / STATUS_FILE if data_dir else None
        self.status_interval_s = status_interval_s
        self.on_status = on_status
        self.keep_poll_starts = keep_poll_starts
        self.jitter = jitter
        self.offline_after = offline_after
        self.backoff_max_s = backoff_max_s
        self.pipeline: Pipeline | None = None
        self.pollers: dict[str, DevicePoller] = {}
        self.drivers: list[Driver[Any]] = []  # each once, also when several devices share one (MQTT per broker)
        self.started_at = time.time()
        self.ready = asyncio.Event()

    # --- wiring ------------------------------------------------------------------------------------------

    def _build_drivers(self, pipeline: Pipeline) -> list[asyncio.Task[None]]:
        """A driver per device with points (from the registry), a poll loop per device with a plan."""
        refs: dict[str, list[PointRef]] = defaultdict(list)
        for ref in self.site.points.values():
            refs[f"{ref.building.id}/{ref.device.id}"].append(ref)
        tasks: list[asyncio.Task[None]] = []
        for key, (_building, device) in self.site.devices.items():
            plan = self.plans.get(key)
            if not refs.get(key) or (plan is not None and not plan.groups):
                continue
            try:
                driver = make_driver(self.context, key, device, refs[key])
            except DeviceError as exc:
                log.error("%s", exc)
                continue
            if all(d is not driver for d in self.drivers):
                self.drivers.append(driver)
            if plan is None:
                continue  # push only
            poller = DevicePoller(plan, driver, pipeline.put, self._status_event, jitter=self.jitter,
                                  offline_after=self.offline_after, backoff_max_s=self.backoff_max_s,
                                  keep_poll_starts=self.keep_poll_starts)
            self.pollers[key] = poller
            tasks.append(asyncio.create_task(poller.run(), name=f"poll-{key}"))
        return tasks

    # --- running -----------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.pipeline = pipeline = Pipeline(self.sinks)
        pipeline.start()
        tasks = self._build_drivers(pipeline)
        for driver in self.drivers:
            await driver.start(pipeline.put)
        status_task = asyncio.create_task(self._status_loop(stop), name="status")
        log.info("collecting %d polled devices with %d drivers", len(self.pollers), len(self.drivers))
        self.ready.set()
        try:
            await stop.wait()
        finally:
            await self._shutdown(tasks, status_task)

    async def _shutdown(self, tasks: list[asyncio.Task[None]], status_task: asyncio.Task[None]) -> None:
        for p in self.pollers.values():
            p.stop()
        done, pending = await asyncio.wait(tasks, timeout=15) if tasks else (set(), set())
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() is not None:
                log.error("poll loop %s ended with %r", t.get_name(), t.exception())
        for driver in self.drivers:
            await driver.stop()
        await self.context.close()
        if self.pipeline is not None:
            await self.pipeline.close()
        status_task.cancel()
        self._write_status()
        log.info("collector stopped: %s", self.summary())

    def _status_event(self, status: DeviceStatus) -> None:
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception as exc:  # noqa: BLE001 - a listener's bug must not stop polling
                log.error("device-status listener failed: %s", exc)

    async def _status_loop(self, stop: asyncio.Event) -> None:
        last_log = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(self.status_interval_s)
            self._write_status()
            if time.monotonic() - last_log >= 60:
                last_log = time.monotonic()
                log.info("collector: %s", self.summary())

    def status(self) -> dict[str, Any]:
        """Everything the dashboard shows about collection: devices, sinks, MQTT sensors."""
        return {
            "ts": time.time(),
            "started_at": self.started_at,
            "devices": {k: p.status.as_dict() for k, p in self.pollers.items()},
            "pipeline": self.pipeline.stats() if self.pipeline else None,
            "push": self._push_stats(),
            "summary": self.summary(),
        }

    def _push_stats(self) -> list[dict[str, Any]]:
        return [s for d in self.drivers if (s := d.stats()) is not None]

    def summary(self) -> dict[str, Any]:
        st = [p.status for p in self.pollers.values()]
        push = self._push_stats()
        health: dict[str, int] = defaultdict(int)
        for s in st:
            health[s.health.value] += 1
        return {"devices": len(st), "health": dict(health), "polls": sum(s.polls for s in st),
                "readings": sum(s.readings for s in st) + sum(p.get("accepted", 0) for p in push),
                "errors": sum(s.errors for s in st),
                "rejected": sum(p.get("rejected_total", 0) for p in push)}

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        try:
            write_status(self.status_path, self.status())
        except OSError as exc:
            log.error("cannot write the status file %s: %s", self.status_path, exc)
