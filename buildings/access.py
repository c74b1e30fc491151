"""Who may see what: users and roles (argon2-hashed passwords, failed-login throttling kept in the records
database), the signed-in principal, and the owner-scoping rules every reader of the data applies.

One place for the dashboard and the API (both may import buildings; neither may import the other). The gate to
the data itself, which also reads telemetry and alarms, is ``insight.scope.Scope``, built on ``Access`` here.

Throttling is persisted (table ``login_failures``) per user name and per client address, so restarting the
dashboard does not reset an attacker's count. The same answer is given for an unknown user and a wrong
password, and an unknown user still costs one hash verification, so the sign-in form does not reveal which
user names exist.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Boolean, DateTime, Engine, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from buildings.records.base import Base, session_factory
from buildings.site import BuildingFile, PointRef, Site

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not-a-real-password-used-to-equalise-timing")
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{1,63}$")
MIN_PASSWORD = 10


class Role(StrEnum):
    OWNER = "owner"
    DISTRICT = "district"
    TECHNICIAN = "technician"


class User(Base):
    """A person who signs in to the dashboard."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginFailure(Base):
    """Failed sign-ins counted per key ('user:NAME' or 'client:ADDR') within a window."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuthError(ValueError):
    """A user-management request that cannot be done; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is signed in: what the scope and the pages need, nothing secret."""

    username: str
    role: Role
    owner_id: str | None = None


class ScopeDenied(PermissionError):
    """The user may not see (or do) this. The message never says whether the thing exists."""


class Unavailable(RuntimeError):
    """A data source is missing or unreachable; the message is for the page, in plain words."""


class Can(StrEnum):
    """What a role may do, beyond reading its buildings."""

    ACKNOWLEDGE = "acknowledge"
    SIMULATE = "simulate"
    PROGRAMME = "programme"
    RECORDS = "records"  # retrofit projects and subsidies


ROLE_CAN: dict[Role, frozenset[Can]] = {
    Role.OWNER: frozenset({Can.ACKNOWLEDGE, Can.RECORDS}),
    Role.DISTRICT: frozenset({Can.ACKNOWLEDGE, Can.RECORDS, Can.PROGRAMME}),
    Role.TECHNICIAN: frozenset({Can.SIMULATE}),
}


def owner_buildings(site: Site, owner_id: str) -> tuple[str, ...]:
    """Ids of the buildings in which owner_id holds a share."""
    return tuple(f.building.id for f in site.files if any(o.owner == owner_id for o in f.building.owners))


@dataclass
class Access:
    """What one principal may see: the buildings, points and actions of its role, from the site files alone.

    Every method that takes a building id or a point key raises ScopeDenied with the same message whether the
    thing exists or not (so probing ids reveals nothing).
    """

    principal: Principal
    site: Site

    @cached_property
    def building_ids(self) -> tuple[str, ...]:
        if self.principal.role is Role.OWNER:
            return owner_buildings(self.site, self.principal.owner_id or "")
        return tuple(f.building.id for f in self.site.files)

    def can(self, what: Can) -> bool:
        return what in ROLE_CAN[self.principal.role]

    def require(self, what: Can) -> None:
        if not self.can(what):
            raise ScopeDenied(f"{self.principal.role.value} users may not {what.value}")

    def allows(self, building_id: str) -> bool:
        return building_id in self.building_ids

    def check(self, building_id: str) -> None:
        if not self.allows(building_id):
            raise ScopeDenied("no such building for this user")

    def buildings(self) -> list[BuildingFile]:
        ids = set(self.building_ids)
        return [f for f in self.site.files if f.building.id in ids]

    def building(self, building_id: str) -> BuildingFile:
        self.check(building_id)
        return self.site.building(building_id)

    def points(self, building_id: str) -> list[PointRef]:
        self.check(building_id)
        return [r for r in self.site.points.values() if r.building.id == building_id]

    def check_points(self, keys: Sequence[str]) -> None:
        for k in keys:
            if k not in self.site.points or not self.allows(self.site.points[k].building.id):
                raise ScopeDenied("no such point for this user")

    @cached_property
    def visible_site(self) -> Site:
        """The site cut down to the user's buildings, for helpers that walk a whole site."""
        return Site(files=self.buildings(), paths=[])


@dataclass(frozen=True)
class ThrottlePolicy:
    """After max failures within window_s, the key is locked for lock_s (doubling on repeat, capped)."""

    user_max: int = 5
    client_max: int = 20
    window_s: int = 900
    lock_s: int = 300
    lock_max_s: int = 3600


@dataclass(frozen=True)
class LoginResult:
    principal: Principal | None
    locked_for_s: int = 0


def _utc(ts: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes: read them as UTC."""
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=dt.UTC)
    return ts


def create_tables(engine: Engine) -> None:
    """Create the users and login_failures tables if missing (idempotent)."""
    Base.metadata.create_all(engine, tables=[User.__table__, LoginFailure.__table__])


def checked_role(role: str, owner_id: str | None, known_owners: set[str] | None, what: str) -> Role:
    """The Role named ``role``, checked against ``owner_id`` (an owner needs one, no one else may have one, and it
    must be a known owner); ValueError saying what to fix. ``what`` names the thing: "user", "token"."""
    try:
        r = Role(role)
    except ValueError:
        raise ValueError(f"role {role!r}: use one of {', '.join(x.value for x in Role)}") from None
    if r is Role.OWNER and not owner_id:
        raise ValueError(f"an owner {what} needs --owner OWNER_ID (the owner id from the site files)")
    if r is not Role.OWNER and owner_id:
        raise ValueError(f"--owner is only for owner {what}s")
    if known_owners is not None and owner_id and owner_id not in known_owners:
        raise ValueError(f"owner {owner_id!r} is not in the site's buildings; known owners: "
                         f"{', '.join(sorted(known_owners)[:20])}")
    return r


def add_user(engine: Engine, username: str, password: str, role: str, owner_id: str | None = None,
             known_owners: set[str] | None = None) -> User:
    """Create a user; refuse bad names, short passwords, unknown roles, owners without an owner id."""
    if not USERNAME_RE.match(username):
        raise AuthError(f"user name {username!r}: use 2-64 letters, digits, '_', '.', '@' or '-'")
    try:
        r = checked_role(role, owner_id, known_owners, "user")
    except ValueError as exc:
        raise AuthError(str(exc)) from None
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password needs at least {MIN_PASSWORD} characters")
    create_tables(engine)
    with session_factory(engine)() as s:
        if s.scalar(select(User).where(User.username == username)) is not None:
            raise AuthError(f"user {username!r} already exists")
        user = User(username=username, password_hash=_HASHER.hash(password), role=r.value, owner_id=owner_id,
                    created=dt.datetime.now(dt.UTC), disabled=False)
        s.add(user)
        s.commit()
        return user


def list_users(engine: Engine) -> list[User]:
    create_tables(engine)
    with session_factory(engine)() as s:
        return list(s.scalars(select(User).order_by(User.username)))


def set_disabled(engine: Engine, username: str, disabled: bool = True) -> None:
    create_tables(engine)
    with session_factory(engine)() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise AuthError(f"no user {username!r}; see `retrofit users list`")
        user.disabled = disabled
        s.commit()


def _lock_remaining(row: LoginFailure | None, now: dt.datetime) -> int:
    until = _utc(row.locked_until) if row else None
    return max(0, int((until - now).total_seconds()) + 1) if until and until > now else 0


def _record_failure(s: Session, key: str, limit: int, policy: ThrottlePolicy, now: dt.datetime) -> None:
    row = s.get(LoginFailure, key)
    if row is None:
        row = LoginFailure(key=key, failures=0, window_start=now, locked_until=None)
        s.add(row)
    if (now - _utc(row.window_start)).total_seconds() > policy.window_s and not _lock_remaining(row, now):
        row.failures, row.window_start = 0, now
    row.failures += 1
    if row.failures >= limit:
        over = row.failures - limit
        row.locked_until = now + dt.timedelta(seconds=min(policy.lock_s * 2 ** min(over, 10), policy.lock_max_s))


def authenticate(engine: Engine, username: str, password: str, client: str | None,
                 policy: ThrottlePolicy = ThrottlePolicy(), now: dt.datetime | None = None) -> LoginResult:
    """Check a sign-in. Locked keys are refused before the password is even looked at."""
    now = now or dt.datetime.now(dt.UTC)
    create_tables(engine)
    ukey, ckey = f"user:{username.strip().lower()[:100]}", f"client:{(client or 'unknown')[:100]}"
    with session_factory(engine)() as s:
        locked = max(_lock_remaining(s.get(LoginFailure, ukey), now), _lock_remaining(s.get(LoginFailure, ckey), now))
        if locked:
            return LoginResult(None, locked)
        user = s.scalar(select(User).where(User.username == username.strip()))
        ok = False
        try:
            ok = _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if ok and user is not None and not user.disabled:
            if _HASHER.check_needs_rehash(user.password_hash):
                user.password_hash = _HASHER.hash(password)
            row = s.get(LoginFailure, ukey)
            if row is not None:
                s.delete(row)
            s.commit()
            return LoginResult(Principal(user.username, Role(user.role), user.owner_id))
        _record_failure(s, ukey, policy.user_max, policy, now)
        _record_failure(s, ckey, policy.client_max, policy, now)
        s.commit()
        return LoginResult(None, 0)
