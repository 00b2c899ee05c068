"""Database models of the licenses service (its own database).

Licence types (the catalogue), licences with their history, holders' authorisations of use,
use records, bulk-issuance jobs, the notification outbox, counters and the key store's
``signing_keys`` (the node's offline-code keys); the holders' page sign-ins are in
:mod:`licenses.console_models`, on the same metadata.

Holder codes (citizen ID numbers, credit codes) are personal data: stored SM4-GCM encrypted
with a keyed blind index (HMAC-SM3) for lookup and a masked copy for display
(:mod:`licenses.holders`).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.crypto.keystore import SigningKeyMixin
from common.db import utcnow
from common.peers.outbox import NotificationOutboxMixin
from licenses.base import Base  # re-exported: the other modules take Base from here

PERSON, ORGANISATION = "person", "organisation"
HOLDER_KINDS = (PERSON, ORGANISATION)

# Licence states. ``pending`` = created but not yet sealed: invisible everywhere (a seal-node
# failure leaves only such a row, which a retry with the same idempotency key completes).
PENDING, VALID, SUSPENDED, REVOKED, SUPERSEDED, EXPIRED = (
    "pending", "valid", "suspended", "revoked", "superseded", "expired")
LICENCE_STATUSES = (PENDING, VALID, SUSPENDED, REVOKED, SUPERSEDED, EXPIRED)
# Revocation kinds: 注销 (cancelled, e.g. at the holder's request) and 吊销 (withdrawn as a sanction).
REVOCATION_KINDS = ("cancelled", "withdrawn")


def new_id() -> str:
    return uuid.uuid4().hex


class SigningKey(SigningKeyMixin, Base):
    __tablename__ = "signing_keys"


class LicenceType(Base):
    """An entry of the catalogue (证照目录)."""

    __tablename__ = "licence_types"

    code: Mapped[str] = mapped_column(String(21), primary_key=True)  # credit code of the owner + 3 digits
    slug: Mapped[str] = mapped_column(String(64), unique=True)  # e.g. food_business_license (staff grants)
    name: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str | None] = mapped_column(String(128), nullable=True)
    holder_kind: Mapped[str] = mapped_column(String(16))
    issuers: Mapped[list[str]] = mapped_column(JSON)  # credit codes of the departments allowed to issue
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # the face (照面信息), see catalogue.FieldSpec
    validity_days: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None = no fixed term
    seal_kind: Mapped[str] = mapped_column(String(16))  # the kind of seal that must seal it
    face_prefix: Mapped[str] = mapped_column(String(16))  # face number (证照编号) prefix
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | retired
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Counter(Base):
    """Named monotonic counters (serials per type and issuer, status-list indexes)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Licence(Base):
    __tablename__ = "licences"
    __table_args__ = (
        UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_licences_idempotency"),
        Index("ix_licences_holder_index_status", "holder_index", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    identifier: Mapped[str] = mapped_column(String(128), unique=True)  # GB/T 36904
    type_code: Mapped[str] = mapped_column(ForeignKey("licence_types.code"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    face_number: Mapped[str] = mapped_column(String(64), index=True)  # 证照编号
    issuer_code: Mapped[str] = mapped_column(String(18), index=True)
    issuer_name: Mapped[str] = mapped_column(String(128))
    holder_kind: Mapped[str] = mapped_column(String(16))
    holder_name: Mapped[str] = mapped_column(String(128))
    holder_index: Mapped[str] = mapped_column(String(64))  # HMAC-SM3 blind index of the holder code
    holder_code_enc: Mapped[str] = mapped_column(Text)  # SM4-GCM, base64
    holder_code_masked: Mapped[str] = mapped_column(String(32))
    fields_enc: Mapped[str] = mapped_column(Text)  # the face fields, JSON, SM4-GCM, base64
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    status_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status_index: Mapped[int] = mapped_column(Integer, unique=True)  # bit in the status list
    document_enc: Mapped[str] = mapped_column(Text)  # the canonical document (RFC 8785), SM4-GCM, base64
    document_sm3: Mapped[str] = mapped_column(String(64))  # hex SM3 of the canonical document
    seal_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    signature_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    signature_b64: Mapped[str | None] = mapped_column(Text, nullable=True)  # DER SES_Signature
    signed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    previous_id: Mapped[str | None] = mapped_column(ForeignKey("licences.id"), nullable=True)
    idempotency_scope: Mapped[str | None] = mapped_column(String(255), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    issued_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(nullable=True)


class LicenceEvent(Base):
    """Every change of a licence: who, when, why."""

    __tablename__ = "licence_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    licence_id: Mapped[str] = mapped_column(ForeignKey("licences.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    actor: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class HolderLink(Base):
    """A holder seen logged in: identity ``sub`` ↔ blind index of their code (for notifications)."""

    __tablename__ = "holder_links"

    sub: Mapped[str] = mapped_column(String(255), primary_key=True)
    holder_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Authorisation(Base):
    """A holder's authorisation of one use (授权用证): fields, purpose, audience, time, count."""

    __tablename__ = "authorisations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(16), unique=True)  # short code typed at a window
    licence_id: Mapped[str] = mapped_column(ForeignKey("licences.id", ondelete="CASCADE"), index=True)
    granted_by: Mapped[str] = mapped_column(String(255))  # identity sub of the holder (or org agent)
    # The names the holder's pages show (授权人, 撤销人): as identity gave them at the time, so
    # an organisation's agents see which colleague granted or stopped a use.
    granted_by_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fields: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(255))
    audience: Mapped[str] = mapped_column(String(255))  # credit code of the organisation, or a client id
    expires_at: Mapped[datetime] = mapped_column()
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(255), nullable=True)  # identity sub
    revoked_by_name: Mapped[str | None] = mapped_column(String(255), nullable=True)


class UseRecord(Base):
    """One verification attempt (用证记录), successful or refused."""

    __tablename__ = "use_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    licence_id: Mapped[str | None] = mapped_column(ForeignKey("licences.id", ondelete="CASCADE"), nullable=True,
                                                   index=True)
    authorisation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    verifier: Mapped[str] = mapped_column(String(255))  # token sub
    verifier_client: Mapped[str | None] = mapped_column(String(255), nullable=True)
    verifier_org: Mapped[str | None] = mapped_column(String(64), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(255), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | refused
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(NotificationOutboxMixin, Base):
    """Outbox of messages to holders: written with the change, delivered by the notifier."""

    __tablename__ = "notifications"


class BulkJob(Base):
    """A bulk issuance (批量发证): rows validated first, then issued in batches, resumable."""

    __tablename__ = "bulk_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    type_code: Mapped[str] = mapped_column(ForeignKey("licence_types.code"))
    issuer_code: Mapped[str] = mapped_column(String(18))
    issuer_name: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="validated")  # validated | running | done | failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The runner working on the job holds it until lease_until (renewed every batch): a second
    # runner is refused meanwhile; a killed runner's lease lapses and the job can be resumed.
    runner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    # The chunks of rows reserved and being sealed, each a small frame (licenses.bulk.chunks): a
    # chunk interrupted before its licences were written is rebuilt from it exactly as it was.
    chunks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class BulkRow(Base):
    __tablename__ = "bulk_rows"

    job_id: Mapped[str] = mapped_column(ForeignKey("bulk_jobs.id", ondelete="CASCADE"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # invalid | pending | issued
    error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    licence_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Kept only for rows left by the previous version of the runner (licences inserted pending
    # before sealing): the seal batch the row's licence was sent in (SM3 of the batch's licence
    # ids, 32 hex), sent again under that key (licenses.bulk.chunks.legacy_batches). The current
    # runner keeps its chunks' frames in BulkJob.chunks and never sets it.
    batch: Mapped[str | None] = mapped_column(String(32), nullable=True)


# The holders' page sign-ins share this metadata (create_all and the migrations' checks see
# them); at the end, as seal.models does.
import licenses.console_models  # noqa: E402, F401
