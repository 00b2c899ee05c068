"""Tables of the gateway's audit log (on the gateway service's ``Base``).

``audit_records`` and ``audit_nodes`` are append-only (records leave only through
:mod:`gateway.audit.retention`, after an archive covers them); ``audit_head`` is the single row
holding the log's committed size, the lock that orders appends, and the index below which
records were pruned after archiving. The search columns of ``audit_records`` are copied out of
the leaf JSON for indexing only: the leaf is what the Merkle tree commits to.
``audit_spool_state`` is each spool's position saved in the same transaction as the records it
moved: the writer's exactly-once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.crypto.keystore import SigningKeyMixin
from common.db import UTCDateTime, utcnow
from common.merkle_log.tables import HEAD_ID, CheckpointMixin, LogHeadMixin, MerkleNodeMixin
from common.web.console_login.models import ConsoleLoginMixin, ConsoleSessionMixin
from gateway.models import Base

__all__ = ["HEAD_ID", "AuditArchive", "AuditCheckpoint", "AuditHead", "AuditNode", "AuditRecord", "AuditSpoolState",
           "ConsoleLogin", "ConsoleSession", "SigningKey"]


class SigningKey(SigningKeyMixin, Base):
    """The gateway's key store (the audit log's SM2 checkpoint key, purpose ``audit-log``)."""

    __tablename__ = "signing_keys"


class AuditHead(LogHeadMixin, Base):
    __tablename__ = "audit_head"

    # sort_order: after the mixin's columns, where the table has it (a class's own columns come first).
    pruned_below: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=1)


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_time", "time"),
        Index("ix_audit_records_request_id", "request_id"),
        Index("ix_audit_records_client_id_leaf_index", "client_id", "leaf_index"),
        Index("ix_audit_records_subject_leaf_index", "subject", "leaf_index"),
        Index("ix_audit_records_route_leaf_index", "route", "leaf_index"),
        Index("ix_audit_records_status_leaf_index", "status", "leaf_index"),
    )

    leaf_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    leaf: Mapped[str] = mapped_column(Text)  # RFC 8785 canonical JSON of the record
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    kind: Mapped[str] = mapped_column(String(16))  # request | audit_query
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    route: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)


class AuditNode(MerkleNodeMixin, Base):
    """The audit log's stored tree: one row per perfect subtree (common.merkle_log.tables)."""

    __tablename__ = "audit_nodes"


class AuditCheckpoint(CheckpointMixin, Base):
    """The audit log's signed tree heads, kept forever."""

    __tablename__ = "audit_checkpoints"


class AuditSpoolState(Base):
    """How far each spool has been moved into the log (saved with the records it moved)."""

    __tablename__ = "audit_spool_state"

    spool_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditArchive(Base):
    """An archival export of leaves ``[start, end)`` written to ``path`` (SM3 of the file kept)."""

    __tablename__ = "audit_archives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger)
    end: Mapped[int] = mapped_column(BigInteger)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text)
    file_sm3: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConsoleLogin(ConsoleLoginMixin, Base):
    """Sign-ins in progress of the auditor console (common.web.console_login)."""

    __tablename__ = "console_logins"


class ConsoleSession(ConsoleSessionMixin, Base):
    __tablename__ = "console_sessions"
