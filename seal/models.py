"""Database models of the seal service (its own database).

Seals (电子印章) with their history, the node CA's certificates (the maker root and one
signer certificate per seal), grants of a seal to OAuth clients and staff subjects, the
signatures made (with their idempotency keys) and the key store's ``signing_keys``.
The signature transparency log's tables live in :mod:`seal.log.models` and the consoles'
sign-ins in :mod:`seal.console_models`, all on :data:`seal.base.Base`; importing this module
registers every table (the migrations and the schema check read ``seal.models.Base.metadata``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.crypto.keystore import SigningKeyMixin
from common.db import utcnow
from seal.base import Base

# Seal kinds: stable code -> (GB/T 38540 property type, Chinese label, English label).
SEAL_KINDS: dict[str, tuple[int, str, str]] = {
    "official": (1, "公章", "Official seal"),
    "contract": (1, "合同专用章", "Contract seal"),
    "finance": (1, "财务专用章", "Finance seal"),
    "license": (1, "证照专用章", "Licence seal"),
    "invoice": (1, "发票专用章", "Invoice seal"),
    "legal_rep": (2, "法定代表人名章", "Legal representative's seal"),
}
ACTIVE, SUSPENDED, REVOKED = "active", "suspended", "revoked"
SEAL_STATUSES = (ACTIVE, SUSPENDED, REVOKED)
GRANT_CLIENT, GRANT_SUBJECT = "client", "subject"


def new_id() -> str:
    return uuid.uuid4().hex


class SigningKey(SigningKeyMixin, Base):
    __tablename__ = "signing_keys"


class Seal(Base):
    __tablename__ = "seals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    es_id: Mapped[str] = mapped_column(String(32), unique=True)  # seal code (esID)
    org_code: Mapped[str] = mapped_column(String(18), index=True)  # unified social credit code
    org_name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    status_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status_changed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    valid_start: Mapped[datetime] = mapped_column()
    valid_end: Mapped[datetime] = mapped_column()
    image_png: Mapped[bytes] = mapped_column(LargeBinary)
    image_width: Mapped[int] = mapped_column(Integer)
    image_height: Mapped[int] = mapped_column(Integer)
    image_generated: Mapped[bool] = mapped_column(default=True)
    kid: Mapped[str] = mapped_column(String(64))  # the seal's SM2 key in signing_keys
    signer_serial: Mapped[str] = mapped_column(String(40))
    eseal_der: Mapped[bytes] = mapped_column(LargeBinary)  # the SESeal, signed by the maker
    # SM3 of eseal_der, hex: names the seal version (signers cache its DER by it, see service.sign).
    eseal_sm3: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SealEvent(Base):
    """History of a seal: creation, status changes with reasons, grants, picture changes."""

    __tablename__ = "seal_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seal_id: Mapped[str] = mapped_column(ForeignKey("seals.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(255), nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Certificate(Base):
    """Certificates of the node CA: the maker root (``seal_id`` null) and signer certificates."""

    __tablename__ = "certificates"

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # lower-case hex
    role: Mapped[str] = mapped_column(String(16))  # maker | signer
    seal_id: Mapped[str | None] = mapped_column(ForeignKey("seals.id", ondelete="CASCADE"), nullable=True,
                                                index=True)
    kid: Mapped[str] = mapped_column(String(64))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(String(512))
    not_before: Mapped[datetime] = mapped_column()
    not_after: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)  # active | revoked
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Grant(Base):
    """Who may sign with a seal: an OAuth client (``client_id``) or a staff subject (``sub``)."""

    __tablename__ = "seal_grants"
    __table_args__ = (UniqueConstraint("seal_id", "grantee_type", "grantee", name="uq_seal_grants_grantee"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seal_id: Mapped[str] = mapped_column(ForeignKey("seals.id", ondelete="CASCADE"), index=True)
    grantee_type: Mapped[str] = mapped_column(String(16))  # client | subject
    grantee: Mapped[str] = mapped_column(String(255))
    granted_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Signature(Base):
    """One ``SES_Signature`` made by the service, with the request that produced it."""

    __tablename__ = "signatures"
    __table_args__ = (
        UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_signatures_idempotency"),
        Index("ix_signatures_seal_id_signed_at", "seal_id", "signed_at"),
        Index("ix_signatures_batch_id_batch_position", "batch_id", "batch_position"),
        # The log entry of a signature reads its DER here (seal.log.models.LogEntry.signature_der).
        Index("ix_signatures_log_index", "log_index", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    seal_id: Mapped[str] = mapped_column(ForeignKey("seals.id", ondelete="CASCADE"))
    signer: Mapped[str] = mapped_column(String(255))  # token sub
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    idempotency_scope: Mapped[str | None] = mapped_column(String(255), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # SM3 of the signing parameters
    document_digest: Mapped[str] = mapped_column(String(64), index=True)  # hex SM3
    property_info: Mapped[str] = mapped_column(String(255))
    signature_der: Mapped[bytes] = mapped_column(LargeBinary)
    signature_digest: Mapped[str] = mapped_column(String(64), unique=True)  # hex SM3 of the DER
    signed_at: Mapped[datetime] = mapped_column()
    log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A signature made in a batch (POST /seals/<id>/sign-batch): the batch and its place in it.
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("signature_batches.id", ondelete="CASCADE"),
                                                 nullable=True)
    batch_position: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SignatureBatch(Base):
    """One batch signing request: its idempotency key names the whole batch, in order."""

    __tablename__ = "signature_batches"
    __table_args__ = (
        UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_signature_batches_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    seal_id: Mapped[str] = mapped_column(ForeignKey("seals.id", ondelete="CASCADE"))
    signer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    idempotency_scope: Mapped[str | None] = mapped_column(String(255), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # SM3 of the seal and every item, in order
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()


# The consoles' sign-ins share this metadata (the signature log's tables are loaded by the
# package, seal/__init__.py: seal.log imports this module, so this module cannot import it).
import seal.console_models  # noqa: E402, F401
