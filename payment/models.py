"""Database models of the payment service (its own database).

The ledger's tables are in :mod:`payment.ledger.models`, on the same :data:`payment.base.Base`;
importing them here lets Alembic and the drift test see every table through this module.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.db import UTCDateTime, utcnow
from common.peers.outbox import NotificationOutboxMixin
from payment.base import Base
from payment.ledger.models import LedgerAccount, LedgerTransfer

__all__ = [
    "Base",
    "ChannelCallback",
    "Fee",
    "LedgerAccount",
    "LedgerTransfer",
    "Notice",
    "NoticeEvent",
    "NoticeItem",
    "Notification",
    "PaymentOrder",
    "Receipt",
    "ReconDifference",
    "Refund",
    "Statement",
    "StatementLineRow",
]


def _uuid() -> str:
    return uuid.uuid4().hex


class Fee(Base):
    """An entry of the fee catalogue (收费项目): what a collecting department may charge."""

    __tablename__ = "fees"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    department_code: Mapped[str] = mapped_column(String(18))  # the collecting department's credit code
    department_name: Mapped[str] = mapped_column(String(255))
    unit_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # fen; None: set per notice
    active: Mapped[bool] = mapped_column(default=True)


class Notice(Base):
    """A payment notice (缴款通知书). ``status`` changes only through :mod:`payment.states`."""

    __tablename__ = "notices"
    __table_args__ = (
        CheckConstraint("total_amount > 0", name="total_positive"),
        CheckConstraint("paid_amount >= 0 AND refunded_amount >= 0 AND refunded_amount <= paid_amount",
                        name="refunds_within_paid"),
        UniqueConstraint("department_code", "idempotency_key", name="uq_notices_idempotency"),
        Index("ix_notices_payer_index", "payer_index"),
        Index("ix_notices_status_due", "status", "due_date"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    payment_code: Mapped[str] = mapped_column(String(20), unique=True)
    department_code: Mapped[str] = mapped_column(String(18))
    department_name: Mapped[str] = mapped_column(String(255))
    payer_kind: Mapped[str] = mapped_column(String(16))  # person | organisation
    payer_name: Mapped[str] = mapped_column(String(255))
    payer_id_encrypted: Mapped[str] = mapped_column(Text)  # SM4-GCM, common.crypto.pii
    payer_index: Mapped[str] = mapped_column(String(64))  # HMAC-SM3 blind index of the payer's id
    payer_id_masked: Mapped[str] = mapped_column(String(32))
    payer_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    due_date: Mapped[date] = mapped_column(Date)
    late_fee_per_day_permille: Mapped[int | None] = mapped_column(Integer, nullable=True)
    case_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)  # 办件编号
    status: Mapped[str] = mapped_column(String(24), default="created")
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The order whose payment the notice took (a second paid order went to suspense): refunds go
    # back through this one.
    paid_order_id: Mapped[str | None] = mapped_column(String(32), nullable=True)

    items: Mapped[list[NoticeItem]] = relationship(order_by="NoticeItem.line", lazy="selectin")


class NoticeItem(Base):
    __tablename__ = "notice_items"
    __table_args__ = (
        CheckConstraint("quantity > 0 AND unit_amount > 0 AND amount = quantity * unit_amount", name="item_amount"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount", name="item_refunds_within_amount"),
    )

    notice_id: Mapped[str] = mapped_column(ForeignKey("notices.id"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    fee_code: Mapped[str] = mapped_column(ForeignKey("fees.code"))
    fee_name: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)


class NoticeEvent(Base):
    """Every state transition of a notice: who, when, from what to what, and why."""

    __tablename__ = "notice_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[str] = mapped_column(ForeignKey("notices.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    to_status: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PaymentOrder(Base):
    """One attempt to pay a notice through a channel (the channel's ``out_trade_no``)."""

    __tablename__ = "payment_orders"
    __table_args__ = (
        CheckConstraint("amount > 0", name="order_amount_positive"),
        Index("ix_payment_orders_notice", "notice_id"),
        Index("ix_payment_orders_status_created", "status", "created_at"),  # the stale-order sweep
        UniqueConstraint("channel", "channel_transaction_id", name="uq_payment_orders_channel_txn"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    notice_id: Mapped[str] = mapped_column(ForeignKey("notices.id"))
    channel: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | paid | closed | returned
    channel_transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="refund_amount_positive"),
        UniqueConstraint("notice_id", "idempotency_key", name="uq_refunds_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    notice_id: Mapped[str] = mapped_column(ForeignKey("notices.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChannelCallback(Base):
    """Every notification a channel sent, kept whatever became of it (posted, duplicate, rejected)."""

    __tablename__ = "channel_callbacks"
    __table_args__ = (Index("ix_channel_callbacks_order", "order_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    notification_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # posted | duplicate | rejected
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Statement(Base):
    """A channel's daily statement (对账单) as imported: its digest, and what was matched."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("channel", "day", name="uq_statements_channel_day"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    channel: Mapped[str] = mapped_column(String(16))
    day: Mapped[date] = mapped_column(Date)
    sha256: Mapped[str] = mapped_column(String(64))
    lines: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    imported_by: Mapped[str] = mapped_column(String(255))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StatementLineRow(Base):
    __tablename__ = "statement_lines"

    statement_id: Mapped[str] = mapped_column(ForeignKey("statements.id"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    channel_transaction_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(24))  # matched | difference


class ReconDifference(Base):
    """A difference between a statement and our postings; open until a recorded, authorised action."""

    __tablename__ = "recon_differences"
    __table_args__ = (Index("ix_recon_differences_statement", "statement_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    statement_id: Mapped[str] = mapped_column(ForeignKey("statements.id"))
    # missing_here | missing_at_channel | amount_mismatch | duplicate | unknown_order
    kind: Mapped[str] = mapped_column(String(24))
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    line: Mapped[int | None] = mapped_column(Integer, nullable=True)
    amount_here: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    amount_at_channel: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    resolution: Mapped[str | None] = mapped_column(String(24), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Notification(NotificationOutboxMixin, Base):
    """Outbox of messages to payers (notice issued, receipt ready): written with the change."""

    __tablename__ = "notifications"


class Receipt(Base):
    """A fiscal e-receipt (财政电子票据) for a paid notice, sealed through the seal node.

    Written in the transaction that marks the notice paid (``pending_seal``), sealed afterwards
    by a task (an outbox: a seal node that is down delays the seal, never loses the receipt).
    """

    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("code", "number", name="uq_receipts_code_number"),
        Index("ix_receipts_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    notice_id: Mapped[str] = mapped_column(ForeignKey("notices.id"), unique=True)
    code: Mapped[str] = mapped_column(String(8))  # EInvoiceCode
    number: Mapped[str] = mapped_column(String(10))  # EInvoiceNumber
    check_code: Mapped[str] = mapped_column(String(6))  # RandomNumber
    department_code: Mapped[str] = mapped_column(String(18))
    document: Mapped[str] = mapped_column(Text)  # RFC 8785 canonical JSON: what the seal signs
    digest: Mapped[str] = mapped_column(String(64))  # SM3 of the document, hex
    status: Mapped[str] = mapped_column(String(16), default="pending_seal")  # pending_seal | sealed
    seal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)  # base64 SES_Signature
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
