"""BACnet change-of-value for one device: SubscribeCOV per point, our own renewal, polling as the fallback.

A point with ``cov: true`` is subscribed (confirmed notifications, lifetime ``lifetime_s``, 300 s by default)
when the collector starts pushes. While its subscription is live the poll loop skips it (its RPMs shrink, or
are not sent at all), which is what saves requests on a steady building. The subscription is renewed at 3/4 of
its lifetime, before the device drops it, with a request bounded by the device's ``timeout_s``. bacpypes3's own
renewal is switched off: when its renewal fails the error is lost in a background task and the subscription
silently stops delivering (``get_value`` waits for ever), which is the lapse this module exists to catch.

- **Refused** (the device answers SubscribeCOV with Error / Reject / Abort, e.g. Reject unrecognized-service on
  a controller without COV): the point is polled; subscribing is tried again every ``retry_refused_s`` (600 s).
- **Lapsed** (a subscribe or renewal times out, the link fails): the point is polled at once; re-subscribing
  backs off from 1 s to 60 s, and polling stops again when a subscription is live.

Each transition is logged once per device (not per point): refused, lapsed, re-established.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.primitivedata import ObjectIdentifier

from collectors.drivers.base import DeviceError
from collectors.planner import BacnetPlanned
from telemetry.reading import Reading

if TYPE_CHECKING:
    from collectors.drivers.bacnet import BacnetDriver

log = logging.getLogger("collectors.bacnet")

LIFETIME_S = 300
RETRY_REFUSED_S = 600.0
BACKOFF_MAX_S = 60.0


class CovState(StrEnum):
    PENDING = "pending"  # not subscribed yet: polled
    ACTIVE = "active"  # live subscription: not polled
    REFUSED = "refused"  # the device said no: polled, retried every retry_refused_s
    LAPSED = "lapsed"  # a subscribe or renewal failed: polled until re-subscribed


class CovSubscriptions:
    """The COV side of one BACnet device: a task per point, and which points the poll loop may skip."""

    def __init__(self, driver: BacnetDriver, points: list[BacnetPlanned], lifetime_s: int = LIFETIME_S,
                 retry_refused_s: float = RETRY_REFUSED_S) -> None:
        self.driver = driver
        self.points = points
        self.lifetime_s = max(2, int(lifetime_s))
        self.retry_refused_s = retry_refused_s
        self.state: dict[str, CovState] = {p.key: CovState.PENDING for p in points}
        self.covered: set[str] = set()  # keys with a live subscription: the poll loop skips them
        self.subscribes = 0  # SubscribeCOV requests sent (first ones and renewals)
        self.notifications = 0  # values of the subscribed property received
        self._tasks: list[asyncio.Task[None]] = []
        self._logged: dict[CovState, bool] = {}

    def start(self, emit: Callable[[list[Reading]], Any]) -> None:
        for p in self.points:
            self._tasks.append(asyncio.create_task(self._loop(p, emit), name=f"cov-{p.key}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception, ErrorRejectAbortNack):  # noqa: BLE001 - shutting down
                pass
        self._tasks.clear()
        self.covered.clear()

    def stats(self) -> dict[str, Any]:
        states = list(self.state.values())
        return {"device": self.driver.name, "cov_points": len(self.points),
                **{f"cov_{s.value}": states.count(s) for s in CovState},
                "cov_subscribes": self.subscribes, "accepted": self.notifications}

    # --- one point -----------------------------------------------------------------------------------------

    def _set(self, p: BacnetPlanned, state: CovState, why: str = "") -> None:
        before = self.state[p.key]
        self.state[p.key] = state
        if state is CovState.ACTIVE:
            self.covered.add(p.key)
        else:
            self.covered.discard(p.key)
        if before is state:
            return
        label = self.driver._label()
        if state is CovState.ACTIVE:
            if before in (CovState.LAPSED, CovState.REFUSED) and self._logged.pop(before, False):
                log.info("%s: COV re-established (%s): polling stops for subscribed points", label, p.object_id)
            return
        if self._logged.get(state):
            return  # once per device until it recovers
        self._logged[state] = True
        if state is CovState.REFUSED:
            log.warning("%s: the device refused COV for %s (%s); polling it instead, retrying every %.0f s "
                        "(set cov: false on its points to stop asking)", label, p.object_id, why,
                        self.retry_refused_s)
        elif state is CovState.LAPSED:
            log.warning("%s: COV subscription for %s lapsed (%s); polling it until re-subscribed", label,
                        p.object_id, why)

    async def _loop(self, p: BacnetPlanned, emit: Callable[[list[Reading]], Any]) -> None:
        delay = 1.0
        while True:
            try:
                await self._session(p, emit)
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except DeviceError as exc:
                from collectors.drivers.bacnet import BacnetReply

                if isinstance(exc, BacnetReply) and self.state[p.key] is not CovState.ACTIVE:
                    self._set(p, CovState.REFUSED, str(exc).rpartition(": ")[2] or str(exc))
                    await asyncio.sleep(self.retry_refused_s)
                    continue
                self._set(p, CovState.LAPSED, str(exc))
            except (Exception, ErrorRejectAbortNack) as exc:  # noqa: BLE001 - keep the subscription going
                self._set(p, CovState.LAPSED, f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _session(self, p: BacnetPlanned, emit: Callable[[list[Reading]], Any]) -> None:
        """Subscribe, deliver notifications, renew at 3/4 of the lifetime; returns or raises when it ends."""
        drv = self.driver
        app = drv.client.start()
        scm = app.change_of_value(drv._addr, ObjectIdentifier(p.object_id), lifetime=self.lifetime_s)
        self.subscribes += 1
        await drv._bounded(scm.__aenter__(), f"SubscribeCOV {p.object_id}")
        getter: asyncio.Future[Any] | None = None
        loop = asyncio.get_running_loop()
        try:
            self._cancel_own_renewal(scm)
            self._set(p, CovState.ACTIVE)
            while True:
                renew_at = loop.time() + self.lifetime_s * 0.75
                while (left := renew_at - loop.time()) > 0:
                    if getter is None:
                        getter = asyncio.ensure_future(scm.get_value())
                    done, _ = await asyncio.wait((getter,), timeout=left)
                    if getter in done:
                        prop, value = getter.result()
                        getter = None
                        if str(prop) == p.property and not isinstance(value, Exception):
                            self.notifications += 1
                            out = emit([drv._reading(p, value, time.time())])
                            if asyncio.iscoroutine(out):
                                await out
                self.subscribes += 1
                await drv._bounded(scm.refresh_subscription(), f"SubscribeCOV renewal {p.object_id}")
                self._cancel_own_renewal(scm)
        finally:
            if getter is not None:
                getter.cancel()
            self.covered.discard(p.key)
            # Abandon the context (no unsubscribe request: the device drops it when the lifetime ends).
            await scm.__aexit__(asyncio.CancelledError, asyncio.CancelledError(), None)

    @staticmethod
    def _cancel_own_renewal(scm: Any) -> None:
        """Switch off bacpypes3's renewal timer (its failures are lost); ours is bounded and watched."""
        handle = getattr(scm, "refresh_subscription_handle", None)
        if handle is not None:
            handle.cancel()
            scm.refresh_subscription_handle = None
