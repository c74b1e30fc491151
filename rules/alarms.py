"""Alarms: the records of what the rules found, their lifecycle, maintenance suppression and MQTT notification.

Lifecycle (ISA-18.2 in spirit): an engine ``raise`` opens an alarm (state ``raised``); a person acknowledges it
(``acknowledged``: who, when, comment); an engine ``clear`` closes it (``cleared``). There is at most one open
alarm per rule and subject (equipment, point or device): a raise while one is open, or within ``reopen_s`` after
it cleared, counts a re-trigger on that alarm instead of opening another, so a flapping sensor is one alarm.
A partial unique index on ``open_key`` enforces this in the database too.

Maintenance windows suppress alarms of a building (or one equipment) for a time: a non-safety alarm raised in a
window is recorded as ``suppressed`` (hidden from the default list, not published); a safety alarm is never
suppressed silently: it is recorded, listed and published like any other, flagged ``during_maintenance``.

Flood control (ISA-18.2 / EEMUA 191: a flood is more than 10 alarms in 10 minutes for one operator), see
``FloodControl``: a rule raising on many points of one building at one instant is ONE alarm with the points
listed (``points``; it clears when its last point clears; a raise of the same rule in the building within the
flood window after it was raised joins it, and makes an acknowledged group unacknowledged again); new alarms
beyond a per-rule and a per-building rate limit (event time) are recorded but suppressed (``flood``: hidden from
the default list, not published, counted by ``floods``); safety alarms are never suppressed, only flagged.

Raise, clear, re-trigger and acknowledge are published on MQTT, topic ``<root>/<building>/alarms/<rule>``, JSON,
QoS 1, when a broker is configured (paho-mqtt with CallbackAPIVersion.VERSION2).

Times are UTC epoch seconds: engine events carry event time (the readings' time), acknowledgements wall time.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Boolean, Engine, Float, Index, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from buildings.records.base import Base, make_engine, session_factory, write_lock
from rules.engine import AlarmEvent
from rules.model import Family

log = logging.getLogger("rules.alarms")

STATES = ("raised", "acknowledged", "cleared")


class Alarm(Base):
    """One alarm: a rule that fired on one subject, from raise to clear."""

    __tablename__ = "alarm"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    building: Mapped[str] = mapped_column(String(64), index=True)
    equipment: Mapped[str] = mapped_column(String(64), default="")
    subject: Mapped[str] = mapped_column(String(64))
    family: Mapped[str] = mapped_column(String(20), index=True)
    severity: Mapped[str] = mapped_column(String(10), index=True)
    state: Mapped[str] = mapped_column(String(14), index=True, default="raised")
    raised_at: Mapped[float] = mapped_column(Float, index=True)
    last_triggered_at: Mapped[float] = mapped_column(Float)
    acked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    acked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ack_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    cleared_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    retriggers: Mapped[int] = mapped_column(Integer, default=0)
    message_zh: Mapped[str] = mapped_column(Text, default="")
    message_en: Mapped[str] = mapped_column(Text, default="")
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    during_maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    # a grouped alarm (subject GROUP): every point it covers, and those whose condition still holds
    points: Mapped[list[str]] = mapped_column(JSON, default=list)
    open_points: Mapped[list[str]] = mapped_column(JSON, default=list)
    # raised beyond a flood-control rate limit: suppressed (unless safety) and counted
    flood: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # "rule|building|subject" while the alarm is open, NULL once cleared: one open alarm per rule and subject
    # ("rule|building|*<raised_at>" for a group)
    open_key: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (Index("ux_alarm_open_key", "open_key", unique=True),)

    def as_dict(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in self.__table__.columns if c.name != "open_key"}


class MaintenanceWindow(Base):
    """A time when a building (or one equipment) is under maintenance: non-safety alarms are suppressed."""

    __tablename__ = "alarm_maintenance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    building: Mapped[str] = mapped_column(String(64), index=True)
    equipment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")

    def covers(self, building: str, equipment: str, ts: float) -> bool:
        return (self.building == building and (self.equipment in (None, "", equipment))
                and self.start <= ts < self.end)


GROUP = "*"  # the subject of a grouped alarm: its points are in ``Alarm.points``


@dataclass(frozen=True)
class FloodControl:
    """Flood-control settings; defaults from ISA-18.2 / EEMUA 191 (a flood: more than 10 alarms per 10 minutes).

    ``building_limit`` new alarms per building and ``rule_limit`` new alarms of one rule in one building are
    annunciated per ``window_s`` of event time; beyond, a new non-safety alarm is recorded suppressed with
    ``flood`` set. ``rule_limits`` overrides the rule limit per rule id. A rule raising on ``group_min`` or more
    points of one building at one instant becomes one grouped alarm. 0 turns a limit (or grouping) off.
    """

    window_s: float = 600.0
    building_limit: int = 10
    rule_limit: int = 5
    rule_limits: Mapping[str, int] = field(default_factory=dict)
    group_min: int = 3

    def limit_of(self, rule: str) -> int:
        return int(self.rule_limits.get(rule, self.rule_limit))

    @classmethod
    def from_settings(cls, settings: Any) -> FloodControl:
        """From the ``alarm_*`` settings (retrofit.settings.Settings; RETROFIT_ALARM_* in the environment)."""
        return cls(window_s=settings.alarm_flood_window_s, building_limit=settings.alarm_building_limit,
                   rule_limit=settings.alarm_rule_limit, rule_limits=dict(settings.alarm_rule_limits),
                   group_min=settings.alarm_group_min)


@dataclass(frozen=True)
class Flood:
    """Flood state of one building: alarms raised in the last window, and what flood control suppressed."""

    building: str
    recent: int  # new alarms (annunciated or not) in the last window_s
    limit: int
    suppressed: int  # flood-suppressed alarms since the start of the look-back
    by_rule: dict[str, int]  # flood-suppressed alarms per rule

    @property
    def active(self) -> bool:
        """In flood now: more new alarms in the last window than the building limit."""
        return self.limit > 0 and self.recent > self.limit


class AlarmError(ValueError):
    """A request on alarms that cannot be done (unknown id, bad window); the message says why."""


def _clean(values: dict[str, float]) -> dict[str, float | None]:
    """JSON-safe values (NaN/inf -> None)."""
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else None) for k, v in values.items()}


def _key(rule: str, building: str, subject: str) -> str:
    return f"{rule}|{building}|{subject}"


def _group_key(rule: str, building: str, raised_at: float) -> str:
    """A grouped alarm's open key: several groups of one rule in a building may be open (separate incidents)."""
    return f"{_key(rule, building, GROUP)}{raised_at:.3f}"


def _group_messages(e: AlarmEvent, n: int) -> tuple[str, str]:
    """A grouped alarm's messages: the first point's, and how many points it covers."""
    return f"{e.message_zh}（共 {n} 个点）", f"{e.message_en} ({n} points)"


def _bursts(events: list[AlarmEvent], group_min: int) -> dict[tuple[str, str, float], list[AlarmEvent]]:
    """Raise events of one rule on ``group_min`` or more subjects of one building at one instant."""
    if group_min <= 0:
        return {}
    by: dict[tuple[str, str, float], list[AlarmEvent]] = defaultdict(list)
    for e in events:
        if e.kind == "raise":
            by[(e.rule, e.building, e.ts)].append(e)
    return {k: v for k, v in by.items() if len({e.subject for e in v}) >= group_min}


class AlarmPublisher:
    """Publish alarm events as JSON with QoS 1 on ``<root>/<building>/alarms/<rule>`` (paho VERSION2)."""

    def __init__(self, url: str, root: str = "retrofit", username: str | None = None,
                 password: str | None = None, client_id: str = "", timeout_s: float = 5.0) -> None:
        from urllib.parse import urlsplit

        import paho.mqtt.client as mqtt

        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "tcp", ""):
            raise AlarmError(f"mqtt url {url!r}: only mqtt://host:port is supported")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.root = root.strip("/")
        self.timeout_s = timeout_s
        self.published = 0
        self.failed = 0
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "")
        user = username or parts.username
        if user:
            self.client.username_pw_set(user, password or parts.password)
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set() if not rc.is_failure else None
        self.client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def topic(self, building: str, rule: str) -> str:
        return f"{self.root}/{building}/alarms/{rule}"

    def publish(self, event: str, alarm: Alarm, ts: float) -> bool:
        """Publish one alarm event; True once the broker acknowledged it (QoS 1) within the timeout."""
        doc = {"event": event, "ts": ts, **alarm.as_dict()}
        payload = json.dumps(doc, ensure_ascii=False, default=str, allow_nan=False)
        self.connected.wait(self.timeout_s)
        info = self.client.publish(self.topic(alarm.building, alarm.rule), payload, qos=1)
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:  # not connected / queue full
            log.warning("alarm %s %s not published to %s:%d: %s", alarm.id, event, self.host, self.port, exc)
        ok = info.is_published()
        if ok:
            self.published += 1
        else:
            self.failed += 1
            log.warning("alarm %s %s: broker %s:%d did not acknowledge within %.0f s (paho keeps retrying)",
                        alarm.id, event, self.host, self.port, self.timeout_s)
        return ok

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Applied:
    """What applying one engine event did: the alarm row and the lifecycle event name."""

    alarm: Alarm
    event: str  # raised | retriggered | reopened | cleared


class AlarmBook:
    """The alarm records: apply engine events, list, acknowledge, suppress. Safe to share across threads."""

    def __init__(self, engine: Engine | str, publisher: AlarmPublisher | None = None, reopen_s: float = 3600.0,
                 flood: FloodControl | None = None) -> None:
        self.flood = flood or FloodControl()
        self._own_engine = isinstance(engine, str)
        self.engine = make_engine(engine) if isinstance(engine, str) else engine
        Base.metadata.create_all(self.engine, tables=[Alarm.__table__, MaintenanceWindow.__table__])
        self.Session = session_factory(self.engine)
        self.publisher = publisher
        self.reopen_s = reopen_s
        self._lock = threading.Lock()

    # -- engine events -------------------------------------------------------------------------------------------

    def apply(self, events: Iterable[AlarmEvent]) -> list[Applied]:
        """Record a batch of engine events (one transaction), then publish them."""
        events = list(events)
        if not events:
            return []
        out: list[Applied] = []
        with self._lock, self.Session.begin() as s:
            windows = self._windows(s, {e.building for e in events},
                                    min(e.ts for e in events), max(e.ts for e in events))
            bursts = _bursts(events, self.flood.group_min)
            done: set[tuple[str, str, float]] = set()
            for e in events:
                at = (e.rule, e.building, e.ts)
                if e.kind == "raise" and at in bursts:  # one rule on many points at one instant: one alarm
                    if at not in done:
                        done.add(at)
                        out += self._apply_burst(s, bursts[at], windows)
                    continue
                a = self._apply_one(s, e, windows)
                if a is not None:
                    out.append(a)
            s.flush()
        if self.publisher is not None:
            for a in out:
                if not a.alarm.suppressed:
                    self.publisher.publish(a.event, a.alarm, a.alarm.last_triggered_at if a.event != "cleared"
                                           else (a.alarm.cleared_at or 0.0))
        return out

    def _windows(self, s: Session, buildings: set[str], t0: float, t1: float) -> list[MaintenanceWindow]:
        q = select(MaintenanceWindow).where(MaintenanceWindow.building.in_(buildings),
                                            MaintenanceWindow.start <= t1, MaintenanceWindow.end > t0)
        return list(s.scalars(q))

    def _open(self, s: Session, key: str) -> Alarm | None:
        return s.scalars(select(Alarm).where(Alarm.open_key == key)).first()

    def _apply_one(self, s: Session, e: AlarmEvent, windows: list[MaintenanceWindow]) -> Applied | None:
        key = _key(e.rule, e.building, e.subject)
        a = self._open(s, key)
        if a is None:
            group = self._group_of(s, e)
            if group is not None:
                return self._apply_member(group, e)
        if e.kind == "clear":
            if a is None:
                return None
            a.state, a.cleared_at, a.open_key = "cleared", e.ts, None
            a.values = {**(a.values or {}), **{f"clear_{k}": v for k, v in _clean(e.values).items()}}
            return Applied(a, "cleared")
        if a is not None:  # raise or re-trigger while open: one alarm, count it
            a.retriggers += 1
            a.last_triggered_at = e.ts
            a.values = _clean(e.values)
            return Applied(a, "retriggered")
        if e.kind == "retrigger":
            return None
        recent = s.scalars(select(Alarm).where(Alarm.rule == e.rule, Alarm.building == e.building,
                                               Alarm.subject == e.subject, Alarm.state == "cleared",
                                               Alarm.cleared_at >= e.ts - self.reopen_s)
                           .order_by(Alarm.cleared_at.desc())).first()
        if recent is not None:  # flapping: reopen the alarm that just cleared
            return self._reopen(recent, e, key)
        return self._new_alarm(s, e, windows)

    def _reopen(self, a: Alarm, e: AlarmEvent, key: str, points: Sequence[str] = ()) -> Applied:
        a.state = "raised"
        a.cleared_at, a.open_key = None, key
        a.retriggers += 1
        a.last_triggered_at = e.ts
        a.values = _clean(e.values)
        if points:
            a.points = sorted({*a.points, *points})
            a.open_points = sorted(points)
            a.message_zh, a.message_en = _group_messages(e, len(a.points))
        else:
            a.message_zh, a.message_en = e.message_zh, e.message_en
        return Applied(a, "reopened")

    def _open_groups(self, s: Session, rule: str, building: str) -> list[Alarm]:
        """The open grouped alarms of a rule in a building, newest first."""
        q = (select(Alarm).where(Alarm.open_key.startswith(_key(rule, building, GROUP), autoescape=True))
             .order_by(Alarm.raised_at.desc()))
        return list(s.scalars(q))

    def _group_of(self, s: Session, e: AlarmEvent, groups: list[Alarm] | None = None) -> Alarm | None:
        """The open group an event belongs to: the one listing its point, else (for a raise) one raised within
        the flood window before it, which the point joins; a raise later than that is a new incident."""
        groups = self._open_groups(s, e.rule, e.building) if groups is None else groups
        member = next((g for g in groups if e.subject in g.points), None)
        if member is not None or e.kind != "raise":
            return member
        return next((g for g in groups if e.ts - self.flood.window_s <= g.raised_at <= e.ts), None)

    def _apply_member(self, g: Alarm, e: AlarmEvent) -> Applied | None:
        """One point's event on an open grouped alarm: a clear closes the group when its last point clears."""
        if e.kind == "clear":
            if e.subject not in g.open_points:
                return None
            g.open_points = [p for p in g.open_points if p != e.subject]
            if g.open_points:
                return None  # the group stays open while any of its points is still in alarm
            g.state, g.cleared_at, g.open_key = "cleared", e.ts, None
            g.values = {**(g.values or {}), **{f"clear_{k}": v for k, v in _clean(e.values).items()}}
            return Applied(g, "cleared")
        if e.subject not in g.points:
            g.points = [*g.points, e.subject]
            g.message_zh, g.message_en = _group_messages(e, len(g.points))
            if g.state == "acknowledged":  # a new point in alarm needs a new acknowledgement (ISA-18.2)
                g.state = "raised"
        if e.subject not in g.open_points:
            g.open_points = [*g.open_points, e.subject]
        g.retriggers += 1
        g.last_triggered_at = e.ts
        g.values = _clean(e.values)
        return Applied(g, "retriggered")

    def _apply_burst(self, s: Session, burst: list[AlarmEvent], windows: list[MaintenanceWindow]) -> list[Applied]:
        """Raises of one rule on many points of one building at one instant: points with an open alarm are
        re-triggered; the others become (or join) one grouped alarm."""
        out: list[Applied] = []
        fresh: dict[str, AlarmEvent] = {}
        groups = self._open_groups(s, burst[0].rule, burst[0].building)
        listed = {p for g in groups for p in g.points}
        for e in burst:
            if e.subject not in fresh and e.subject not in listed and self._open(
                    s, _key(e.rule, e.building, e.subject)) is None:
                fresh[e.subject] = e
            else:
                a = self._apply_one(s, e, windows)
                if a is not None:
                    out.append(a)
        first = next(iter(fresh.values()), None)
        if first is None:
            return out
        if self._group_of(s, first, groups) is not None or len(fresh) < self.flood.group_min:
            return out + [a for e in fresh.values() if (a := self._apply_one(s, e, windows)) is not None]
        recent = s.scalars(select(Alarm).where(Alarm.rule == first.rule, Alarm.building == first.building,
                                               Alarm.subject == GROUP, Alarm.state == "cleared",
                                               Alarm.cleared_at >= first.ts - self.reopen_s)
                           .order_by(Alarm.cleared_at.desc())).first()
        if recent is not None:  # the same burst again soon after it cleared: one alarm, reopened
            return [*out, self._reopen(recent, first, _group_key(first.rule, first.building, recent.raised_at),
                                       list(fresh))]
        return [*out, self._new_alarm(s, first, windows, sorted(fresh))]

    def _new_alarm(self, s: Session, e: AlarmEvent, windows: list[MaintenanceWindow],
                   points: Sequence[str] = ()) -> Applied:
        """Open a new alarm (grouped when ``points`` are given), suppressed in a maintenance window or beyond a
        flood-control limit unless it is a safety alarm."""
        in_window = any(w.covers(e.building, e.equipment, e.ts) for w in windows)
        safety = e.family == Family.SAFETY
        flood = self._over_limit(s, e)
        subject = GROUP if points else e.subject
        zh, en = _group_messages(e, len(points)) if points else (e.message_zh, e.message_en)
        a = Alarm(rule=e.rule, building=e.building, equipment=e.equipment, subject=subject,
                  family=e.family.value, severity=e.severity.value, state="raised", raised_at=e.ts,
                  last_triggered_at=e.ts, retriggers=0, message_zh=zh, message_en=en,
                  values=_clean(e.values), suppressed=(in_window or flood) and not safety,
                  during_maintenance=in_window, flood=flood, points=list(points), open_points=list(points),
                  open_key=_group_key(e.rule, e.building, e.ts) if points else _key(e.rule, e.building, subject))
        s.add(a)
        return Applied(a, "raised")

    def _over_limit(self, s: Session, e: AlarmEvent) -> bool:
        """Whether the building, or this rule in the building, already annunciated its limit of new alarms in
        the flood window before ``e`` (event time)."""
        fc = self.flood
        shown = (select(func.count()).select_from(Alarm)
                 .where(Alarm.building == e.building, Alarm.raised_at > e.ts - fc.window_s,
                        Alarm.raised_at <= e.ts, Alarm.suppressed.is_(False)))
        if fc.building_limit > 0 and s.scalar(shown) >= fc.building_limit:
            return True
        limit = fc.limit_of(e.rule)
        return limit > 0 and s.scalar(shown.where(Alarm.rule == e.rule)) >= limit

    # -- the dashboard's API -------------------------------------------------------------------------------------

    def list(self, buildings: Sequence[str] | None = None, family: str | Sequence[str] | None = None,
             severity: str | Sequence[str] | None = None, state: str | Sequence[str] | None = None,
             include_suppressed: bool = False, since: float | None = None, limit: int = 500) -> list[Alarm]:
        """Alarms, newest first; each filter takes one value or several; ``buildings`` scopes an owner's view."""
        q = select(Alarm)
        if buildings is not None:
            q = q.where(Alarm.building.in_(list(buildings)))
        for col, val in ((Alarm.family, family), (Alarm.severity, severity), (Alarm.state, state)):
            if val is not None:
                q = q.where(col.in_([val] if isinstance(val, str) else list(val)))
        if not include_suppressed:
            q = q.where(Alarm.suppressed.is_(False))
        if since is not None:
            q = q.where(Alarm.last_triggered_at >= since)
        q = q.order_by(Alarm.raised_at.desc(), Alarm.id.desc()).limit(limit)
        with self.Session() as s:
            return list(s.scalars(q))

    def get(self, alarm_id: int) -> Alarm:
        with self.Session() as s:
            a = s.get(Alarm, alarm_id)
        if a is None:
            raise AlarmError(f"no alarm with id {alarm_id}")
        return a

    def acknowledge(self, alarm_id: int, user: str, comment: str = "", at: float | None = None) -> Alarm:
        """Acknowledge an alarm (who, when, comment). A cleared alarm keeps state cleared but records the ack."""
        if not user or not user.strip():
            raise AlarmError("acknowledging needs the user's name")
        with self._lock, self.Session.begin() as s:
            write_lock(s)  # the row as it is now, locked: an ack must not undo a clear another process committed
            a = s.get(Alarm, alarm_id, with_for_update=True)
            if a is None:
                raise AlarmError(f"no alarm with id {alarm_id}")
            if a.acked_at is not None and a.state != "raised":
                raise AlarmError(f"alarm {alarm_id} was already acknowledged by {a.acked_by}")
            a.acked_at = time.time() if at is None else at
            a.acked_by = user.strip()
            a.ack_comment = comment
            if a.state == "raised":
                a.state = "acknowledged"
            s.flush()
        if self.publisher is not None and not a.suppressed:
            self.publisher.publish("acknowledged", a, a.acked_at)
        return a

    def floods(self, buildings: Sequence[str] | None = None, now: float | None = None,
               lookback_s: float = 86400.0, control: FloodControl | None = None) -> list[Flood]:
        """Buildings in flood now (more new alarms in the last window than the building limit) or with alarms
        flood control suppressed in the look-back, with the counts per rule; for the dashboard's indicator.
        ``control`` gives the window and limit when they are not this book's (a reader with the settings)."""
        now = time.time() if now is None else now
        fc = control or self.flood
        recent = (select(Alarm.building, func.count()).where(Alarm.raised_at > now - fc.window_s,
                                                             Alarm.raised_at <= now).group_by(Alarm.building))
        held = (select(Alarm.building, Alarm.rule, func.count())
                .where(Alarm.flood.is_(True), Alarm.suppressed.is_(True), Alarm.raised_at > now - lookback_s,
                       Alarm.raised_at <= now).group_by(Alarm.building, Alarm.rule))
        if buildings is not None:
            recent = recent.where(Alarm.building.in_(list(buildings)))
            held = held.where(Alarm.building.in_(list(buildings)))
        with self.Session() as s:
            n_recent = {b: int(n) for b, n in s.execute(recent)}
            by_rule: dict[str, Counter[str]] = defaultdict(Counter)
            for b, rule, n in s.execute(held):
                by_rule[b][rule] += int(n)
        out = [Flood(b, n_recent.get(b, 0), fc.building_limit, sum(by_rule[b].values()), dict(by_rule[b]))
               for b in sorted(set(n_recent) | set(by_rule))]
        return [f for f in out if f.active or f.suppressed]

    def counts(self, buildings: Sequence[str] | None = None) -> dict[str, int]:
        """Open alarms by severity (for badges)."""
        out = {}
        for a in self.list(buildings=buildings, state=["raised", "acknowledged"], limit=100_000):
            out[a.severity] = out.get(a.severity, 0) + 1
        return out

    # -- maintenance ----------------------------------------------------------------------------------------------

    def suppress(self, building: str, start: float, end: float, equipment: str | None = None, reason: str = "",
                 user: str = "") -> MaintenanceWindow:
        """Declare a maintenance window; non-safety alarms raised in it are recorded but suppressed."""
        if end <= start:
            raise AlarmError("a maintenance window must end after it starts")
        w = MaintenanceWindow(building=building, equipment=equipment, start=start, end=end, reason=reason,
                              created_by=user)
        with self._lock, self.Session.begin() as s:
            s.add(w)
        return w

    def windows(self, building: str | None = None) -> list[MaintenanceWindow]:
        q = select(MaintenanceWindow)
        if building:
            q = q.where(MaintenanceWindow.building == building)
        with self.Session() as s:
            return list(s.scalars(q.order_by(MaintenanceWindow.start)))

    def close(self) -> None:
        """Stop the publisher; dispose the engine only if this book created it (a shared one is the caller's)."""
        if self.publisher is not None:
            self.publisher.close()
        if self._own_engine:
            self.engine.dispose()
