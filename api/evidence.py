"""Paperless evidence: the audit log's hash chain, per-user Ed25519 keys, signed documents and applications.

Hash chain: every audit_log row gets ``hash = SHA-256(prev_hash | canonical JSON of the row)`` and
``prev_hash`` = the previous row's hash (by id; the first row chains to 64 zeros). Rows are written by many
packages without a hash; ``seal`` chains every row whose hash is still NULL, in id order (the database allows
setting a NULL hash once, never changing it). The API seals after each request it logs; ``retrofit evidence
seal`` and ``sign`` seal too. ``verify_chain`` recomputes everything: a changed row breaks its own hash, a deleted
row breaks its successor's prev_hash, and a deleted tail is caught by the signed checkpoints ``seal --sign-as``
writes (the checkpoint names a row id and hash that must still be there).

Keys: ``generate_key`` makes an Ed25519 pair for a dashboard user; the public key is registered in
``signing_keys``; the private key is written as PKCS#8 PEM encrypted with a passphrase that comes from the
environment (RETROFIT_KEY_PASSPHRASE), or given as RETROFIT_SIGNING_KEY (PEM) in the environment. Signing needs
the private key whose public key is registered for that user.

Signatures sign a canonical JSON payload of what is approved: for a document its id, project, type, title and
SHA-256 (and the digest of the file, which must match); for a subsidy application its id, project, policy,
status, assessed amount and the digests of the project's documents. ``verify_all`` rebuilds each payload from
the records as they are now, so a changed digest, amount or status fails its signature.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import DateTime, Engine, Integer, String, Text, and_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from buildings.records.base import Base, session_factory
from buildings.records.models import AuditLog, Document, SubsidyApplication, lock_audit_chain

GENESIS = "0" * 64
PASSPHRASE_ENV = "RETROFIT_KEY_PASSPHRASE"
KEY_ENV = "RETROFIT_SIGNING_KEY"


class EvidenceError(ValueError):
    """A signing or key request that cannot be done; the message says what to fix (never a key or passphrase)."""


class SigningKey(Base):
    """A user's registered Ed25519 public key (the private key never enters the database)."""

    __tablename__ = "signing_keys"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    public_key: Mapped[str] = mapped_column(String(64))  # raw 32 bytes, base64
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Signature(Base):
    """A signature over a canonical payload: a document, a subsidy application or an audit checkpoint."""

    __tablename__ = "evidence_signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(24))  # document | subsidy_application | audit_checkpoint
    subject_id: Mapped[str] = mapped_column(String(120), index=True)
    payload: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))
    signer: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    content_path: Mapped[str | None] = mapped_column(String(500), nullable=True)


def create_tables(engine: Engine) -> None:
    Base.metadata.create_all(engine, tables=[SigningKey.__table__, Signature.__table__])


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


# --- audit chain -----------------------------------------------------------------------------------------------
def _row_payload(r: AuditLog) -> dict[str, Any]:
    at = r.at.replace(tzinfo=None).isoformat(timespec="microseconds") if r.at else None
    return {"id": r.id, "at": at, "actor": r.actor, "action": r.action, "entity": r.entity,
            "entity_id": r.entity_id, "field": r.field, "old": r.old_value, "new": r.new_value}


def row_hash(prev: str, r: AuditLog) -> str:
    return hashlib.sha256(prev.encode() + b"|" + canonical(_row_payload(r))).hexdigest()


def seal(s: Session) -> int:
    """Chain every unsealed audit row (hash NULL) after the last sealed one; returns how many were sealed."""
    lock_audit_chain(s)  # one chain writer at a time (buildings.records.models), or two chains could fork
    last = s.scalars(select(AuditLog).where(AuditLog.hash.is_not(None)).order_by(AuditLog.id.desc())).first()
    prev = last.hash if last else GENESIS
    q = select(AuditLog).where(AuditLog.hash.is_(None)).order_by(AuditLog.id)
    if last is not None:
        q = q.where(AuditLog.id > last.id)
    n = 0
    for r in list(s.scalars(q)):
        h = row_hash(prev, r)
        # core UPDATE guarded by "hash IS NULL": a concurrent sealer's row is left alone (and the database's
        # set-once trigger never fires); the ORM's append-only guard is for ORM changes, this is the sanctioned path
        s.execute(update(AuditLog).where(and_(AuditLog.id == r.id, AuditLog.hash.is_(None)))
                  .values(prev_hash=prev, hash=h).execution_options(synchronize_session=False))
        prev, n = h, n + 1
    for obj in list(s.identity_map.values()):
        if isinstance(obj, AuditLog):
            s.expire(obj)
    return n


def append_audit(engine: Engine, actor: str, action: str, entity: str, entity_id: str, field_: str | None = None,
                 new: Any = None) -> None:
    """Append one audit row and seal the chain in the same transaction."""
    with session_factory(engine).begin() as s:
        s.add(AuditLog(actor=actor[:120], action=action[:40], entity=entity[:40], entity_id=entity_id[:120],
                       field=field_, new_value=None if new is None else json.dumps(new, ensure_ascii=False,
                                                                                  default=str)))
        s.flush()
        seal(s)


@dataclass
class Report:
    """What verification found: problems (each says what and where) and counts."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(s: Session, report: Report) -> None:
    prev, prev_id, sealed, unsealed_tail = GENESIS, None, 0, 0
    rows = {}
    for r in s.scalars(select(AuditLog).order_by(AuditLog.id)):
        rows[r.id] = r.hash
        if r.hash is None:
            unsealed_tail += 1
            continue
        if unsealed_tail:
            report.problems.append(f"audit_log: {unsealed_tail} row(s) before row {r.id} have no hash although "
                                   f"later rows do (hash removed or rows inserted out of order)")
            unsealed_tail = 0
        where = f"audit_log row {r.id} ({r.action} {r.entity} {r.entity_id})"
        if r.prev_hash != prev:
            after = f"row {prev_id}" if prev_id is not None else "the start of the log"
            report.problems.append(f"{where}: prev_hash does not match the hash of {after}: a row between them "
                                   f"was deleted or the chain was rewritten")
        if row_hash(r.prev_hash or GENESIS, r) != r.hash:
            report.problems.append(f"{where}: content does not match its hash: the row was changed after sealing")
        prev, prev_id, sealed = r.hash, r.id, sealed + 1
    if unsealed_tail:
        report.notes.append(f"audit_log: {unsealed_tail} newest row(s) not sealed yet (run `retrofit evidence seal`)")
    report.checked["audit_rows"] = sealed
    for sig in s.scalars(select(Signature).where(Signature.subject == "audit_checkpoint")):
        cp = json.loads(sig.payload)
        if rows.get(cp["row_id"], "missing") != cp["hash"]:
            state = "is missing" if cp["row_id"] not in rows else "has a different hash"
            report.problems.append(f"audit_log row {cp['row_id']} {state}: it was sealed in checkpoint "
                                   f"{sig.id} signed by {sig.signer} (the log was truncated or rewritten)")


# --- keys ------------------------------------------------------------------------------------------------------
def fingerprint(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def generate_key(engine: Engine, username: str, out: Path, passphrase: str | None) -> str:
    """Make a key pair for a user: register the public key, write the private key encrypted; returns fingerprint."""
    if not passphrase or len(passphrase) < 12:
        raise EvidenceError(f"set {PASSPHRASE_ENV} (at least 12 characters) to encrypt the private key")
    if out.exists():
        raise EvidenceError(f"{out} exists; refusing to overwrite a private key")
    _require_user(engine, username)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(passphrase.encode()))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = key.public_key()
    fp = fingerprint(pub)
    create_tables(engine)
    with session_factory(engine).begin() as s:
        s.add(SigningKey(fingerprint=fp, username=username,
                         public_key=base64.b64encode(pub.public_bytes(serialization.Encoding.Raw,
                                                                      serialization.PublicFormat.Raw)).decode(),
                         created=dt.datetime.now(dt.UTC)))
    append_audit(engine, f"user:{username}", "create", "signing_key", fp)
    return fp


def load_private_key(key_file: Path | None) -> Ed25519PrivateKey:
    """The signer's private key: RETROFIT_SIGNING_KEY (PEM) or an encrypted key file + RETROFIT_KEY_PASSPHRASE."""
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if key_file is not None:
        try:
            data = key_file.read_bytes()
        except OSError as exc:
            raise EvidenceError(f"{key_file}: cannot read the key file ({exc.strerror})") from None
        where = str(key_file)
    elif os.environ.get(KEY_ENV):
        data, where = os.environ[KEY_ENV].encode(), KEY_ENV
    else:
        raise EvidenceError(f"give --key-file (with {PASSPHRASE_ENV}) or set {KEY_ENV} in the environment")
    try:
        key = serialization.load_pem_private_key(data, passphrase.encode() if passphrase else None)
    except TypeError:
        raise EvidenceError(f"{where} is encrypted: set {PASSPHRASE_ENV}") from None
    except ValueError:
        raise EvidenceError(f"{where}: not a PEM private key, or the passphrase in {PASSPHRASE_ENV} is wrong") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceError(f"{where}: not an Ed25519 key")
    return key


def _require_user(engine: Engine, username: str) -> str:
    from buildings.access import User
    from buildings.access import create_tables as user_tables

    user_tables(engine)
    with session_factory(engine)() as s:
        u = s.scalar(select(User).where(User.username == username))
    if u is None or u.disabled:
        raise EvidenceError(f"no active dashboard user {username!r}; see `retrofit users list`")
    if u.role == "technician":
        raise EvidenceError(f"user {username!r} is a technician: only owner or district users approve evidence")
    return u.role


# --- payloads and signatures -----------------------------------------------------------------------------------
def document_payload(d: Document) -> dict[str, Any]:
    return {"kind": "document", "id": d.id, "project": d.project_id, "milestone": d.milestone_id,
            "type": d.doc_type, "title": d.title, "sha256": d.sha256}


def application_payload(s: Session, a: SubsidyApplication) -> dict[str, Any]:
    docs = s.scalars(select(Document).where(Document.project_id == a.project_id).order_by(Document.id))
    return {"kind": "subsidy_application", "id": a.id, "project": a.project_id, "policy": a.policy_id,
            "status": a.status, "assessed_amount": a.assessed_amount,
            "submitted_on": a.submitted_on.isoformat() if a.submitted_on else None,
            "documents": {str(d.id): d.sha256 for d in docs}}


def _registered(s: Session, username: str, key: Ed25519PrivateKey) -> str:
    fp = fingerprint(key.public_key())
    rec = s.get(SigningKey, fp)
    if rec is None or rec.username != username or rec.revoked_at is not None:
        raise EvidenceError(f"this private key is not registered for {username!r}; run "
                            f"`retrofit evidence keygen {username}` or use that user's key")
    return fp


def sign_document(engine: Engine, document_id: int, username: str, key: Ed25519PrivateKey,
                  content: Path | None = None) -> Signature:
    """Sign a filed document as its approver; with ``content`` the file's SHA-256 must match the record."""
    _require_user(engine, username)
    create_tables(engine)
    with session_factory(engine).begin() as s:
        fp = _registered(s, username, key)
        d = s.get(Document, document_id)
        if d is None:
            raise EvidenceError(f"no document {document_id}; see the project's documents (`retrofit program show`)")
        if content is not None:
            digest = _file_sha256(content)
            if digest != d.sha256:
                raise EvidenceError(f"{content}: SHA-256 {digest[:12]}... does not match document {document_id} "
                                    f"({d.sha256[:12]}...): not the approved file")
        now = dt.datetime.now(dt.UTC)
        payload = document_payload(d)
        sig = Signature(subject="document", subject_id=str(d.id), payload=canonical(payload).decode(),
                        signature=base64.b64encode(key.sign(canonical(payload))).decode(), fingerprint=fp,
                        signer=username, signed_at=now,
                        content_path=str(content.resolve()) if content is not None else None)
        s.add(sig)
        d.signed_by, d.signed_at = username, now.replace(tzinfo=None)
        s.add(AuditLog(actor=f"user:{username}", action="sign", entity="document", entity_id=str(d.id),
                       field="sha256", new_value=json.dumps({"sha256": d.sha256, "key": fp})))
        s.flush()
        seal(s)
        return sig


def sign_application(engine: Engine, application_id: str, username: str, key: Ed25519PrivateKey) -> Signature:
    """Sign a subsidy application (status, amount and the digests of its project's documents) as its approver."""
    role = _require_user(engine, username)
    if role != "district":
        raise EvidenceError(f"user {username!r} is not district staff: only they approve subsidy applications")
    create_tables(engine)
    with session_factory(engine).begin() as s:
        fp = _registered(s, username, key)
        a = s.get(SubsidyApplication, application_id)
        if a is None:
            raise EvidenceError(f"no subsidy application {application_id!r}")
        payload = application_payload(s, a)
        sig = Signature(subject="subsidy_application", subject_id=a.id, payload=canonical(payload).decode(),
                        signature=base64.b64encode(key.sign(canonical(payload))).decode(), fingerprint=fp,
                        signer=username, signed_at=dt.datetime.now(dt.UTC))
        s.add(sig)
        s.add(AuditLog(actor=f"user:{username}", action="sign", entity="subsidy_application", entity_id=a.id,
                       new_value=json.dumps({"status": a.status, "key": fp})))
        s.flush()
        seal(s)
        return sig


def checkpoint(engine: Engine, username: str, key: Ed25519PrivateKey) -> Signature | None:
    """Seal the log and sign its head (row id and hash), so a later truncation is detected."""
    _require_user(engine, username)
    create_tables(engine)
    with session_factory(engine).begin() as s:
        fp = _registered(s, username, key)
        seal(s)
        head = s.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
        if head is None:
            return None
        payload = {"kind": "audit_checkpoint", "row_id": head.id, "hash": head.hash}
        sig = Signature(subject="audit_checkpoint", subject_id=str(head.id), payload=canonical(payload).decode(),
                        signature=base64.b64encode(key.sign(canonical(payload))).decode(), fingerprint=fp,
                        signer=username, signed_at=dt.datetime.now(dt.UTC))
        s.add(sig)
        return sig


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read ({exc.strerror})") from None
    return h.hexdigest()


def verify_all(engine: Engine) -> Report:
    """Check every signature against the records as they are now, every signed file's digest, and the chain."""
    create_tables(engine)
    report = Report()
    with session_factory(engine)() as s:
        keys = {k.fingerprint: k for k in s.scalars(select(SigningKey))}
        n_sig = 0
        for sig in s.scalars(select(Signature).order_by(Signature.id)):
            n_sig += 1
            where = f"signature {sig.id} ({sig.subject} {sig.subject_id}, signed by {sig.signer})"
            k = keys.get(sig.fingerprint)
            if k is None or k.username != sig.signer:
                report.problems.append(f"{where}: key {sig.fingerprint} is not registered for {sig.signer}")
                continue
            pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(k.public_key))
            try:
                pub.verify(base64.b64decode(sig.signature), sig.payload.encode())
            except (InvalidSignature, ValueError):
                report.problems.append(f"{where}: the signature does not verify (payload or signature altered)")
                continue
            current = _current_payload(s, sig)
            if current is not None and canonical(current).decode() != sig.payload:
                changed = _diff(json.loads(sig.payload), current)
                report.problems.append(f"{where}: the record changed since it was signed ({changed})")
            elif current is None and sig.subject != "audit_checkpoint":
                report.problems.append(f"{where}: the signed {sig.subject} no longer exists")
            if sig.content_path:
                p = Path(sig.content_path)
                want = json.loads(sig.payload).get("sha256")
                if not p.exists():
                    report.problems.append(f"{where}: the signed file {p} is missing")
                elif _file_sha256(p) != want:
                    report.problems.append(f"{where}: the file {p} no longer matches its SHA-256 {want[:12]}...")
        report.checked["signatures"] = n_sig
        docs = list(s.scalars(select(Document)))
        signed = {int(x.subject_id) for x in s.scalars(select(Signature).where(Signature.subject == "document"))}
        for d in docs:
            if len(d.sha256 or "") != 64 or any(c not in "0123456789abcdef" for c in d.sha256):
                report.problems.append(f"document {d.id} ({d.title}): its SHA-256 {d.sha256!r} is not a digest")
        unsigned = [d.id for d in docs if d.id not in signed]
        report.checked["documents"] = len(docs)
        if unsigned:
            report.notes.append(f"{len(unsigned)} document(s) not signed yet: {', '.join(map(str, unsigned[:20]))}"
                                + (" ..." if len(unsigned) > 20 else ""))
        verify_chain(s, report)
    return report


def _current_payload(s: Session, sig: Signature) -> dict[str, Any] | None:
    if sig.subject == "document":
        d = s.get(Document, int(sig.subject_id))
        return document_payload(d) if d else None
    if sig.subject == "subsidy_application":
        a = s.get(SubsidyApplication, sig.subject_id)
        return application_payload(s, a) if a else None
    return None


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "changed: " + ", ".join(keys) if keys else "re-encoded"

