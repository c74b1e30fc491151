"""One poll loop per device (asyncio), like Home Assistant's update coordinator.

Each device polls its plan on its own phase-locked schedule (interval plus a small jitter so devices do not
fire in lock-step, no drift), bounds every request with the device's timeout, and turns failures into one
well-defined health state:

- ``ok``: the last cycle read every request.
- ``degraded``: the last cycle failed once, or only part of it was read, or points came back bad.
- ``offline``: ``offline_after`` (2) consecutive cycles failed; polls then back off exponentially
  (interval x 2^n, up to ``backoff_max_s``) and reconnect, and come back to the normal schedule on success.

Failed requests still produce Readings (value None, quality comm-failure) so downstream sees the gap, and every
health change is a ``DeviceStatus`` event. The log is quiet (``QuietLog``): a line when a device starts failing,
gets worse or fails in a new way, one when it recovers, and a summary at most every 10 minutes in between.
A device's loop only ever awaits its own I/O: a dead or slow device never delays another device's polls.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from collectors.decode import failed
from collectors.drivers.base import DeviceError, DeviceProtocolError, DeviceTimeout, DeviceUnreachable, Driver, Emit
from collectors.planner import DevicePlan, ScheduleGroup
from telemetry.reading import Quality, Reading

log = logging.getLogger("collectors.poller")


class Health(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    OFFLINE = "offline"
    STARTING = "starting"


@dataclass
class DeviceStatus:
    """A device's health and counters, as the dashboard and the logs see them."""

    device: str
    protocol: str
    health: Health = Health.STARTING
    last_error: str | None = None
    last_error_ts: float | None = None
    last_ok_ts: float | None = None
    consecutive_failures: int = 0
    polls: int = 0
    failed_polls: int = 0
    requests: int = 0
    errors: int = 0
    readings: int = 0
    bad_readings: int = 0
    overruns: int = 0
    last_latency_s: float | None = None
    max_latency_s: float = 0.0
    latency_sum_s: float = 0.0
    plan_changes: list[dict[str, object]] = field(default_factory=list)  # reads the driver re-split
    poll_starts: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("poll_starts")
        d["health"] = self.health.value
        d["mean_latency_s"] = self.latency_sum_s / self.polls if self.polls else None
        return d


StatusListener = Callable[[DeviceStatus], None]


class DevicePoller:
    """Polls one device's plan until stopped."""

    def __init__(self, plan: DevicePlan, driver: Driver[Any], emit: Emit, on_status: StatusListener | None = None,
                 jitter: float = 0.02, backoff_max_s: float = 300.0, offline_after: int = 2,
                 keep_poll_starts: int = 0, seed: int | None = None, quiet: QuietLog | None = None) -> None:
        self.plan = plan
        self.driver = driver
        self.emit = emit
        self.on_status = on_status
        self.jitter = jitter
        self.backoff_max_s = backoff_max_s
        self.offline_after = offline_after
        self.keep_poll_starts = keep_poll_starts
        self.rng = random.Random(seed)
        self.status = DeviceStatus(device=plan.device_key, protocol=plan.device.protocol.value,
                                   plan_changes=list(plan.changes))  # carried on into the next status file
        self.quiet = quiet or QuietLog(plan.device_key)
        self._stop = asyncio.Event()
        self._opened = False

    def stop(self) -> None:
        self._stop.set()

    def _jitter(self, interval: float) -> float:
        return self.rng.uniform(-1, 1) * min(self.jitter * interval, 1.0)

    async def run(self) -> None:
        """The loop: wait for the earliest due group, poll it, reschedule; until stop()."""
        groups = self.plan.groups
        if not groups:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Spread devices over their first interval so a site does not hit every device at once.
        base = [now + self.rng.uniform(0, min(g.interval_s, 1.0) * 0.5) for g in groups]
        due = list(base)
        try:
            while not self._stop.is_set():
                i = min(range(len(groups)), key=lambda k: due[k])
                delay = due[i] - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
                ok = await self.poll_group(groups[i])
                interval = groups[i].interval_s
                if ok or self.status.health != Health.OFFLINE:
                    base[i] += interval
                    nxt = base[i] + self._jitter(interval)
                else:  # offline: back off, interval x 2^(n - offline_after), capped
                    n = self.status.consecutive_failures - self.offline_after
                    wait = min(interval * (2 ** max(n, 0)), max(self.backoff_max_s, interval))
                    base[i] = loop.time() + wait
                    nxt = base[i]
                now = loop.time()
                if nxt < now:  # the poll overran its interval: skip the missed slots, keep the phase
                    self.status.overruns += 1
                    missed = int((now - base[i]) // interval) + 1
                    base[i] += missed * interval
                    nxt = base[i]
                due[i] = nxt
        finally:
            await self.driver.close()

    async def poll_group(self, group: ScheduleGroup) -> bool:
        """Read every request of a group once; emit its readings; update health. True when all succeeded."""
        st = self.status
        start_wall = time.time()
        t0 = time.perf_counter()
        if self.keep_poll_starts:
            st.poll_starts.append(start_wall)
            del st.poll_starts[:-self.keep_poll_starts]
        st.polls += 1
        readings: list[Reading] = []
        errors: list[str] = []
        aborted = False
        try:
            if not self._opened:
                await self.driver.open()
                self._opened = True
        except DeviceError as exc:
            errors.append(str(exc))
            aborted = True
        except Exception as exc:  # noqa: BLE001 - e.g. our BACnet port is taken: report it, retry with backoff
            errors.append(f"cannot open {st.device}: {type(exc).__name__}: {exc}")
            aborted = True
        for req in group.reads:
            if aborted:
                readings.extend(failed([p.key for p in req.points], start_wall))
                continue
            st.requests += 1
            try:
                readings.extend(await self.driver.read(req))
            except (DeviceTimeout, DeviceUnreachable) as exc:
                # The device or link is gone: do not spend a timeout on each remaining request this cycle.
                errors.append(str(exc))
                self._opened = False
                aborted = True
                readings.extend(failed([p.key for p in req.points], start_wall))
            except DeviceProtocolError as exc:  # it answered, just not with data: the other requests may work
                errors.append(str(exc))
                readings.extend(failed([p.key for p in req.points], start_wall, Quality.BAD))
            except DeviceError as exc:
                errors.append(str(exc))
                readings.extend(failed([p.key for p in req.points], start_wall))
            except Exception as exc:  # noqa: BLE001 - a driver or library bug must not end this device's loop
                log.exception("device %s: unexpected error reading %s", st.device, req.describe())
                errors.append(f"unexpected {type(exc).__name__}: {exc}")
                self._opened = False
                aborted = True
                readings.extend(failed([p.key for p in req.points], start_wall))
        latency = time.perf_counter() - t0
        st.last_latency_s = latency
        st.latency_sum_s += latency
        st.max_latency_s = max(st.max_latency_s, latency)
        st.readings += len(readings)
        not_good = [r.quality for r in readings if r.quality is not Quality.GOOD]
        st.bad_readings += len(not_good)
        # Out-of-range is the sensor's problem, not the link's: only BAD / COMM_FAILURE degrade the device.
        bad = sum(1 for q in not_good if q is Quality.BAD or q is Quality.COMM_FAILURE)
        all_failed = bool(errors) and (aborted or len(errors) >= len(group.reads))
        self._update_health(errors, all_failed, bad)
        if readings:
            await self.emit(readings)
        return not errors

    def _update_health(self, errors: list[str], all_failed: bool, bad: int) -> None:
        st = self.status
        before = st.health
        if errors:
            st.errors += len(errors)
            st.last_error = errors[0] if len(errors) == 1 else f"{errors[0]} (+{len(errors) - 1} more)"
            st.last_error_ts = time.time()
        if all_failed:
            st.failed_polls += 1
            st.consecutive_failures += 1
            st.health = Health.OFFLINE if st.consecutive_failures >= self.offline_after else Health.DEGRADED
        else:
            st.consecutive_failures = 0
            st.last_ok_ts = time.time()
            st.health = Health.DEGRADED if errors or bad else Health.OK
        plan_changes = getattr(self.driver, "plan_changes", None)
        if plan_changes:
            st.plan_changes = [*self.plan.changes, *plan_changes]
        self.quiet.poll(before, st.health, st.last_error if errors else None)
        if st.health != before and self.on_status is not None:
            self.on_status(st)


class QuietLog:
    """A device's failures in the log the way Home Assistant's coordinator does it: one line when it starts
    failing (the reason, which says what to check), one when it gets worse (offline) or fails in a new way, one
    when it recovers, and while it stays down a summary at most every ``summary_every_s`` (10 min). A device
    that flaps (fails again within that time) is not announced again: the summary counts its flaps. Health and
    reading quality still change on every poll; only the log is quiet. ``clock`` is injectable for tests."""

    def __init__(self, device: str, summary_every_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.device = device
        self.summary_every_s = summary_every_s
        self.clock = clock
        self.failing_since: float | None = None
        self.recovered_at = -math.inf
        self.last_line = -math.inf
        self.failed = 0  # failed polls since the last line
        self.failed_total = 0  # failed polls in this episode
        self.flaps = 0  # recoveries followed by a new failure within the window
        self.kinds: set[str] = set()  # kinds of error reported in this window
        self.worst = 0  # the worst health reported in this window (RANK)
        self.reported = False  # a failure was logged and its recovery not yet

    def poll(self, before: Health, after: Health, error: str | None) -> None:
        now = self.clock()
        if error is None:
            self._ok(now, before, after)
            return
        self.failed += 1
        if self.failing_since is None:
            self.failing_since, self.failed_total = now, 0
            if now - self.recovered_at < self.summary_every_s:
                self.flaps += 1
            else:
                self.kinds, self.worst, self.flaps = set(), 0, 0
        self.failed_total += 1
        kind = _kind(error)
        if kind not in self.kinds or RANK[after] > self.worst:
            news = f"{before.value} -> {after.value}" if after != before else f"still {after.value}, now"
            self.kinds.add(kind)
            self.worst = max(self.worst, RANK[after])
            self._line(now, f"{news}: {error}")
        elif now - self.last_line >= self.summary_every_s:
            flaps = f", {self.flaps} recoveries that did not last" if self.flaps else ""
            self._line(now, f"still {after.value} after {_duration(now - self.failing_since)}, {self.failed} "
                            f"failed polls since the last report{flaps}; last error: {error}")
            self.kinds, self.worst, self.flaps = {kind}, RANK[after], 0

    def _ok(self, now: float, before: Health, after: Health) -> None:
        if self.failing_since is not None:
            if self.reported:
                log.info("device %s: recovered (%s) after %s with %d failed polls", self.device, after.value,
                         _duration(now - self.failing_since), self.failed_total)
                self.reported = False
                self.last_line = now
            self.failing_since, self.recovered_at = None, now
        elif after != before and now - self.last_line >= self.summary_every_s / 60:
            log.log(logging.INFO if after is Health.OK else logging.WARNING, "device %s: %s -> %s",
                    self.device, before.value, after.value)
            self.last_line = now

    def _line(self, now: float, text: str) -> None:
        log.warning("device %s: %s", self.device, text)
        self.last_line, self.failed, self.reported = now, 0, True


RANK = {Health.STARTING: 0, Health.OK: 0, Health.DEGRADED: 1, Health.OFFLINE: 2}
_NUMBERS = re.compile(r"\b[0-9a-fA-F]+\b|\d+")  # numbers, hex bytes and ids
_RUNS = re.compile(r"#(?:[ .:,/-]*#)+")


def _kind(error: str) -> str:
    """The gist of an error without its numbers and hex bytes (a new timeout is not news; a new kind is)."""
    return _RUNS.sub("#", _NUMBERS.sub("#", error))[:300]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
