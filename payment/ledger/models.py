"""Tables of the ledger: accounts with running balances, and immutable transfers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from common.db import UTCDateTime, utcnow
from payment.base import Base

# A transfer's kind of movement (TigerBeetle's ``code``), for reports and reconciliation.
TRANSFER_CODES = ("payment", "refund", "settlement", "adjustment", "reversal")
ACCOUNT_KINDS = ("payer_clearing", "channel_receivable", "department_revenue", "refunds_payable",
                 "treasury_settlement", "suspense")


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    # The limits live in the database: an UPDATE that would break one fails, whatever raced it.
    __table_args__ = (
        CheckConstraint("NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted",
                        name="debits_within_credits"),
        CheckConstraint("NOT credits_must_not_exceed_debits OR credits_pending + credits_posted <= debits_posted",
                        name="credits_within_debits"),
        CheckConstraint("debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
                        name="sums_not_negative"),
        # A few rows rewritten by every transfer: room on each page for their next versions, so a
        # balance update stays on its page (HOT) and the table does not grow between vacuums
        # (migration payment_0004).
        {"postgresql_with": {"fillfactor": 10}},
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    debits_must_not_exceed_credits: Mapped[bool] = mapped_column(Boolean, default=False)
    credits_must_not_exceed_debits: Mapped[bool] = mapped_column(Boolean, default=False)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LedgerTransfer(Base):
    """One immutable journal entry. ``status`` is the only column that ever changes, and only
    from ``pending`` to ``posted`` or ``voided``, by the transfer that resolves it."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
        CheckConstraint("status IN ('pending', 'posted', 'voided')", name="known_status"),
        Index("ix_ledger_transfers_debit", "debit_account_id"),
        Index("ix_ledger_transfers_credit", "credit_account_id"),
        Index("ix_ledger_transfers_reference", "reference"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    debit_account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(32))
    # pending: reserves the amount; post / void: resolves ``pending_id`` (unique: at most once).
    kind: Mapped[str] = mapped_column(String(16), default="single")
    pending_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_transfers.id"), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
