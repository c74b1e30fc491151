"""The collector of a site: one poll loop per polled device, MQTT sensor subscribers, the pipeline, a status file.

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

from buildings.site import PointRef, Protocol, Site
from collectors.drivers.bacnet import BacnetClient, BacnetDriver
from collectors.drivers.base import Driver
from collectors.drivers.modbus import LinkPool, ModbusDriver
from collectors.drivers.mqtt import MqttSensors
from collectors.pipeline import STATUS_FILE, Pipeline, Sink, write_status
from collectors.planner import BacnetPlanned, DevicePlan, plan_site
from collectors.poller import DevicePoller, DeviceStatus
from telemetry.reading import Reading

log = logging.getLogger("collectors")


class Collector:
    """Runs every device of a site until stopped."""

    def __init__(self, site: Site, sinks: Sequence[Sink], *, mqtt_url: str | None = None,
                 mqtt_username: str | None = None, mqtt_password: str | None = None,
                 bacnet_local: str | None = None, data_dir: Path | None = None, status_interval_s: float = 5.0,
                 on_status: Callable[[DeviceStatus], None] | None = None, keep_poll_starts: int = 0,
                 jitter: float = 0.02, offline_after: int = 2, backoff_max_s: float = 300.0, cov: bool = True,
                 plans: dict[str, DevicePlan] | None = None) -> None:
        self.site = site
        from collectors.pipeline import learned_plan_changes  # the reads an earlier run had to re-split

        self.plans = plans if plans is not None else plan_site(site, learned_plan_changes(data_dir))
        self.sinks = list(sinks)
        self.mqtt_url = mqtt_url
        self.mqtt_auth = (mqtt_username, mqtt_password)
        self.bacnet_local = bacnet_local
        self.status_path = Path(data_dir) / STATUS_FILE if data_dir else None
        self.status_interval_s = status_interval_s
        self.on_status = on_status
        self.keep_poll_starts = keep_poll_starts
        self.jitter = jitter
        self.offline_after = offline_after
        self.backoff_max_s = backoff_max_s
        self.cov = cov
        self.pipeline: Pipeline | None = None
        self.pollers: dict[str, DevicePoller] = {}
        self.mqtt: list[MqttSensors] = []
        self.bacnet: BacnetClient | None = None
        self.started_at = time.time()
        self.ready = asyncio.Event()

    # --- wiring ------------------------------------------------------------------------------------------

    def _driver(self, plan: DevicePlan, pool: LinkPool) -> Driver:
        d = plan.device
        if d.protocol in (Protocol.MODBUS, Protocol.MODBUS_RTU):
            return ModbusDriver(plan.device_key, d, pool)
        if self.bacnet is None:
            self.bacnet = BacnetClient(self.bacnet_local)
        return BacnetDriver(plan.device_key, d, self.bacnet)

    def _mqtt_groups(self) -> dict[str, list[PointRef]]:
        """MQTT sensor points by broker URL: the configured site broker, else each device's own host:port."""
        groups: dict[str, list[PointRef]] = defaultdict(list)
        for ref in self.site.points.values():
            if ref.device.protocol != Protocol.MQTT:
                continue
            url = self.mqtt_url or f"mqtt://{ref.device.host}:{ref.device.port or ref.device.default_port}"
            groups[url].append(ref)
        return groups

    # --- running -----------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.pipeline = pipeline = Pipeline(self.sinks)
        pipeline.start()
        pool = LinkPool()
        tasks: list[asyncio.Task[None]] = []
        for key, plan in self.plans.items():
            if not plan.groups:
                continue
            driver = self._driver(plan, pool)
            poller = DevicePoller(plan, driver, pipeline.put, self._status_event, jitter=self.jitter,
                                  offline_after=self.offline_after, backoff_max_s=self.backoff_max_s,
                                  keep_poll_starts=self.keep_poll_starts)
            self.pollers[key] = poller
            tasks.append(asyncio.create_task(poller.run(), name=f"poll-{key}"))
            if self.cov and isinstance(driver, BacnetDriver):
                cov_points = [BacnetPlanned(r.key, r.point.bacnet.object_type, r.point.bacnet.instance,
                                            r.point.bacnet.property, r.point.range)
                              for r in self.site.points_of_device(key) if r.point.bacnet and r.point.bacnet.cov]
                if cov_points:
                    driver.subscribe_cov(cov_points, pipeline.put)

        def emit_threadsafe(batch: list[Reading]) -> None:
            # Called on paho's thread: wait for the pipeline to take it (back-pressure reaches the broker).
            try:
                asyncio.run_coroutine_threadsafe(pipeline.put(batch), loop).result(timeout=60)
            except Exception as exc:  # noqa: BLE001 - loop closing at shutdown, or a stuck pipeline
                log.error("mqtt sensors: could not hand %d readings to the pipeline: %s", len(batch), exc)

        for url, refs in self._mqtt_groups().items():
            sensors = MqttSensors(url, refs, emit_threadsafe, *self.mqtt_auth)
            sensors.start()
            self.mqtt.append(sensors)
        status_task = asyncio.create_task(self._status_loop(stop), name="status")
        log.info("collecting %d polled devices and %d MQTT sensor topics", len(self.pollers),
                 sum(len(m.subs) for m in self.mqtt))
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
        for m in self.mqtt:
            await asyncio.to_thread(m.stop)
        if self.bacnet is not None:
            self.bacnet.close()
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
            "mqtt_sensors": [m.stats() for m in self.mqtt],
            "summary": self.summary(),
        }

    def summary(self) -> dict[str, Any]:
        st = [p.status for p in self.pollers.values()]
        health: dict[str, int] = defaultdict(int)
        for s in st:
            health[s.health.value] += 1
        return {"devices": len(st), "health": dict(health), "polls": sum(s.polls for s in st),
                "readings": sum(s.readings for s in st) + sum(m.accepted for m in self.mqtt),
                "errors": sum(s.errors for s in st),
                "mqtt_rejected": sum(m.rejected_total for m in self.mqtt)}

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        try:
            write_status(self.status_path, self.status())
        except OSError as exc:
            log.error("cannot write the status file %s: %s", self.status_path, exc)
