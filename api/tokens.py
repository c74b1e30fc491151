"""API tokens: scoped like dashboard users (buildings.access.Role), stored as a SHA-256 digest, revocable,
expiring.

A token reads ``rft_<id>_<secret>``: the id is public (it names the token in lists, the audit log and revocation),
the secret is 32 random bytes shown once at creation. Only SHA-256(secret) is stored: the secret has 256 bits of
entropy, so a slow password hash would add nothing but per-request cost. Comparison is constant-time.

The ``pii`` right lets a district token read owners' personal information unmasked (api.pii); it is refused on
owner and technician tokens.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Boolean, DateTime, Engine, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from buildings.access import Principal, Role, checked_role
from buildings.records.base import Base, session_factory

TOKEN_RE = re.compile(r"^rft_([a-z0-9]{10})_([A-Za-z0-9_\-]{43})$")
DEFAULT_RATE_PER_MIN = 120
MAX_DAYS = 3650


class ApiToken(Base):
    """One API token: who it acts as, until when, how fast; never the token itself."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pii: Mapped[bool] = mapped_column(Boolean, default=False)
    rate_per_min: Mapped[int] = mapped_column(Integer, default=DEFAULT_RATE_PER_MIN)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(120), default="")
    expires: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def state(self, now: dt.datetime | None = None) -> str:
        now = now or dt.datetime.now(dt.UTC)
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if _utc(self.expires) <= now else "active"


class TokenError(ValueError):
    """A token request that cannot be done; the message says why (never contains a secret)."""


@dataclass(frozen=True)
class TokenPrincipal:
    """An authenticated token: the dashboard Principal it acts as, plus the API-only rights."""

    token_id: str
    principal: Principal
    pii: bool
    rate_per_min: int

    @property
    def may_see_pii(self) -> bool:
        return self.pii and self.principal.role is Role.DISTRICT


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_tables(engine: Engine) -> None:
    Base.metadata.create_all(engine, tables=[ApiToken.__table__])


def create_token(engine: Engine, name: str, role: str, days: float, owner_id: str | None = None, pii: bool = False,
                 rate_per_min: int = DEFAULT_RATE_PER_MIN, created_by: str = "cli",
                 known_owners: set[str] | None = None, now: dt.datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token; returns (record, the token text). The text is never stored: show it once."""
    try:
        r = checked_role(role, owner_id, known_owners, "token")
    except ValueError as exc:
        raise TokenError(str(exc)) from None
    if pii and r is not Role.DISTRICT:
        raise TokenError("the pii right is only for district tokens")
    if not 0 < days <= MAX_DAYS:
        raise TokenError(f"--expires must be between 0 and {MAX_DAYS} days")
    if not 1 <= rate_per_min <= 100_000:
        raise TokenError("--rate must be 1..100000 requests per minute")
    name = name.strip() or f"{r.value} token"
    create_tables(engine)
    now = now or dt.datetime.now(dt.UTC)
    tid = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))
    secret = secrets.token_urlsafe(32)
    rec = ApiToken(id=tid, name=name[:120], secret_sha256=_digest(secret), role=r.value, owner_id=owner_id, pii=pii,
                   rate_per_min=rate_per_min, created=now, created_by=created_by[:120],
                   expires=now + dt.timedelta(days=days), revoked_at=None)
    with session_factory(engine)() as s:
        s.add(rec)
        s.commit()
    return rec, f"rft_{tid}_{secret}"


def list_tokens(engine: Engine) -> list[ApiToken]:
    create_tables(engine)
    with session_factory(engine)() as s:
        return list(s.scalars(select(ApiToken).order_by(ApiToken.created, ApiToken.id)))


def revoke_token(engine: Engine, token_id: str, now: dt.datetime | None = None) -> ApiToken:
    """Revoke by id (the part after ``rft_``); takes effect on the next request."""
    create_tables(engine)
    m = TOKEN_RE.match(token_id)
    token_id = m.group(1) if m else token_id
    with session_factory(engine)() as s:
        rec = s.get(ApiToken, token_id)
        if rec is None:
            raise TokenError(f"no token {token_id!r}; see `retrofit users token list`")
        if rec.revoked_at is None:
            rec.revoked_at = now or dt.datetime.now(dt.UTC)
            s.commit()
        return rec


def authenticate(engine: Engine, text: str | None, now: dt.datetime | None = None) -> TokenPrincipal | None:
    """The principal of a presented token, or None when missing, malformed, unknown, wrong, revoked or expired."""
    if not text:
        return None
    m = TOKEN_RE.match(text.strip())
    with session_factory(engine)() as s:
        rec = s.get(ApiToken, m.group(1)) if m else None
        given = _digest(m.group(2)) if m else _digest("x")
        ok = hmac.compare_digest(given, rec.secret_sha256 if rec else _digest("y"))
    if not (m and rec and ok) or rec.state(now) != "active":
        return None
    return TokenPrincipal(rec.id, Principal(f"token:{rec.id}", Role(rec.role), rec.owner_id), rec.pii,
                          rec.rate_per_min)
