"""Tables of the signature transparency log (on the seal service's ``Base``).

``log_entries`` and ``log_nodes`` are append-only; ``log_head`` is the single row whose
``size`` is the log's committed length and, being updated by every append, also the lock that
orders concurrent appends. The search columns of ``log_entries`` are copied out of the leaf
JSON for indexing only: the leaf is what the Merkle tree commits to.
"""

from __future__ import annotations

import base64
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, column_property, mapped_column

from common.db import UTCDateTime, utcnow
from common.merkle_log.tables import HEAD_ID, CheckpointMixin, LogHeadMixin, MerkleNodeMixin
from seal.base import Base
from seal.models import Signature

__all__ = ["HEAD_ID", "AuditQuery", "LogCheckpoint", "LogEntry", "LogHead", "LogNode"]


class LogHead(LogHeadMixin, Base):
    __tablename__ = "log_head"


class LogEntry(Base):
    __tablename__ = "log_entries"
    __table_args__ = (
        Index("ix_log_entries_seal_code_leaf_index", "seal_code", "leaf_index"),
        Index("ix_log_entries_org_code_leaf_index", "org_code", "leaf_index"),
        Index("ix_log_entries_signer_leaf_index", "signer", "leaf_index"),
        Index("ix_log_entries_document_digest", "document_digest"),
        Index("ix_log_entries_seal_id", "seal_id"),
        Index("ix_log_entries_time", "time"),
        Index("ix_log_entries_leaf_hash", "leaf_hash"),
    )

    # The primary key is the unique constraint that makes a duplicate index impossible.
    leaf_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    leaf: Mapped[str] = mapped_column(Text)  # RFC 8785 canonical JSON of the event
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    event_type: Mapped[str] = mapped_column(String(32))
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    seal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seal_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    org_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    signer: Mapped[str | None] = mapped_column(String(255), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    document_digest: Mapped[str | None] = mapped_column(String(128), nullable=True)
    signature_digest: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # base64 SES_Signature DER; not part of the leaf, which commits to it via signature_digest.
    # Signing entries since seal_0007 leave it null: their DER is stored once, in the signature's
    # row (``signature_der`` below); events logged with their DER otherwise keep it here.
    ses_signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    appended_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def signature_b64(self) -> str | None:
        """The entry's SES_Signature DER, base64, from wherever it is stored (or None)."""
        if self.ses_signature is not None:
            return self.ses_signature
        return base64.b64encode(self.signature_der).decode() if self.signature_der is not None else None


# The DER of the signature whose entry this is (signatures.log_index, unique), read with the entry.
LogEntry.signature_der = column_property(  # type: ignore[attr-defined]
    select(Signature.signature_der).where(Signature.log_index == LogEntry.leaf_index)
    .correlate_except(Signature).scalar_subquery())


class LogNode(MerkleNodeMixin, Base):
    """The signature log's stored tree: one row per perfect subtree (common.merkle_log.tables)."""

    __tablename__ = "log_nodes"


class LogCheckpoint(CheckpointMixin, Base):
    """The signature log's signed tree heads, kept forever."""

    __tablename__ = "log_checkpoints"


class AuditQuery(Base):
    """Who asked the log what, when, and how it went (GB/T 22239 audit record)."""

    __tablename__ = "audit_queries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    query: Mapped[str] = mapped_column(Text)  # JSON of the path and query parameters
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))  # success | denied | failure
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
