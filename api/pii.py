"""Personal information of individual owners: where it is stored, and how it is masked.

Owners of small units in fragmented buildings are often natural persons. Their name, resident ID number and
phone are personal information (PIPL art. 4, 28: an ID number is sensitive). They live in one table only,
``owner_contacts`` (the contact person of an owner row, e.g. the representative of "3F unit owners, 14
individuals"), filled by ``retrofit contacts import``; nothing else stores them.

Every API response and export passes owner data through ``owner_view``: unmasked only for a district principal
holding the ``pii`` right, masked for everyone else. The name of an owner row of kind ``individual`` counts as
personal too. Masks follow common practice (GB/T 35273 examples): surname kept, ID number region and last four
kept, phone 3+4 kept. Log lines never carry these fields: the audit log records paths and ids only.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import DateTime, Engine, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from buildings.records.base import Base, session_factory

PERSONAL_FIELDS = ("contact_name", "id_number", "phone")
ID_RE = re.compile(r"^\d{17}[\dXx]$")
PHONE_RE = re.compile(r"^\+?[\d\- ]{7,20}$")


class OwnerContact(Base):
    """The contact person of an owner row: personal information, masked unless the reader holds the pii right."""

    __tablename__ = "owner_contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[str] = mapped_column(String(64), index=True)
    contact_name: Mapped[str] = mapped_column(String(100))
    id_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ContactError(ValueError):
    """A contact row that cannot be stored; the message names the row and field, never the value."""


def mask_name(name: str | None) -> str | None:
    """Keep the first character (the surname in Chinese), star the rest: 张三丰 -> 张**."""
    if not name:
        return name
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 1)


def mask_id_number(v: str | None) -> str | None:
    """Keep the first six (region) and the last four: 500103********1234."""
    if not v:
        return v
    return v[:6] + "*" * max(len(v) - 10, 4) + v[-4:] if len(v) > 10 else "*" * len(v)


def mask_phone(v: str | None) -> str | None:
    """Keep the first three and the last four digits: 138****5678."""
    if not v:
        return v
    digits = re.sub(r"\D", "", v)
    return digits[:3] + "*" * max(len(digits) - 7, 4) + digits[-4:] if len(digits) > 7 else "*" * len(digits)


def create_tables(engine: Engine) -> None:
    Base.metadata.create_all(engine, tables=[OwnerContact.__table__])


def import_contacts(engine: Engine, text: str, known_owners: set[str] | None = None,
                    source: str = "contacts.csv") -> int:
    """Replace the contacts of the owners named in a CSV (owner_id,contact_name,id_number,phone); all or nothing."""
    rows = list(csv.DictReader(io.StringIO(text)))
    need = {"owner_id", "contact_name"}
    problems = []
    if not rows:
        raise ContactError(f"{source}: no rows (header owner_id,contact_name,id_number,phone)")
    missing = need - set(rows[0])
    if missing:
        raise ContactError(f"{source}: missing column(s) {', '.join(sorted(missing))}")
    for i, r in enumerate(rows, start=2):
        if not (r.get("owner_id") or "").strip() or not (r.get("contact_name") or "").strip():
            problems.append(f"{source}:{i}: owner_id and contact_name are required")
        elif known_owners is not None and r["owner_id"].strip() not in known_owners:
            problems.append(f"{source}:{i}: owner_id {r['owner_id'].strip()!r} is not in the site's buildings")
        if (r.get("id_number") or "").strip() and not ID_RE.match(r["id_number"].strip()):
            problems.append(f"{source}:{i}: id_number is not an 18-character resident ID number")
        if (r.get("phone") or "").strip() and not PHONE_RE.match(r["phone"].strip()):
            problems.append(f"{source}:{i}: phone is not a phone number")
    if problems:
        raise ContactError("; ".join(problems) + "; nothing was imported")
    create_tables(engine)
    now = dt.datetime.now(dt.UTC)
    owners = {r["owner_id"].strip() for r in rows}
    with session_factory(engine).begin() as s:
        for c in s.scalars(select(OwnerContact).where(OwnerContact.owner_id.in_(owners))):
            s.delete(c)
        for r in rows:
            s.add(OwnerContact(owner_id=r["owner_id"].strip(), contact_name=r["contact_name"].strip(),
                               id_number=(r.get("id_number") or "").strip() or None,
                               phone=(r.get("phone") or "").strip() or None, updated=now))
    return len(rows)


def contacts_by_owner(engine: Engine | None, owner_ids: Iterable[str]) -> dict[str, list[OwnerContact]]:
    if engine is None:
        return {}
    create_tables(engine)
    out: dict[str, list[OwnerContact]] = {}
    with session_factory(engine)() as s:
        for c in s.scalars(select(OwnerContact).where(OwnerContact.owner_id.in_(list(owner_ids)))
                           .order_by(OwnerContact.id)):
            out.setdefault(c.owner_id, []).append(c)
    return out


def owner_view(owner: str, name: str, kind: str, area_m2: float, count: int, share: float | None,
               contacts: list[OwnerContact], unmasked: bool) -> dict[str, Any]:
    """One owner row as the API and exports show it, masked unless ``unmasked``."""
    personal = kind == "individual"
    return {
        "owner_id": owner, "kind": kind, "count": count, "area_m2": area_m2, "share": share,
        "name": name if unmasked or not personal else mask_name(name),
        "masked": not unmasked,
        "contacts": [{"contact_name": c.contact_name if unmasked else mask_name(c.contact_name),
                      "id_number": c.id_number if unmasked else mask_id_number(c.id_number),
                      "phone": c.phone if unmasked else mask_phone(c.phone)} for c in contacts],
    }


def owners_of(site_building: Any, engine: Engine | None, unmasked: bool) -> list[dict[str, Any]]:
    """The owner rows of a site building (from its site file) with their contacts, masked as the reader requires."""
    shares = site_building.owners
    total = sum(o.area_m2 for o in shares)
    contacts = contacts_by_owner(engine, [o.owner for o in shares])
    return [owner_view(o.owner, o.name, o.kind.value, o.area_m2, o.count, o.area_m2 / total if total else None,
                       contacts.get(o.owner, []), unmasked) for o in shares]
