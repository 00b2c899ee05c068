"""Daily settlement (日终清算) to the treasury account of each department.

For a closed day (Beijing time) and a channel, each department is owed what was collected for
it through that channel on that day, less the refunds of those payments that the channel paid
out of its collections (refunds posted on the payment's own day; a refund on a later day is a
refund from the treasury, see postings.py, and does not touch any settlement). So a day's
amount never changes once the day has closed: a later refund neither blocks nor alters it.

One transfer per department and channel moves that amount from the channel's receivable to
the department's treasury settlement account; its id (``settle:<day>:<channel>:<department>``)
makes running a day twice a replay. The channel's receivable can never be credited beyond what
it was debited (its account flag), so no settlement can pay out money that was not collected.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from common.db import begin_write
from common.errors import Problem
from payment import postings
from payment.ledger.models import LedgerAccount, LedgerTransfer
from payment.ledger.transfers import TransferResult, TransferSpec, create_transfers
from payment.reconciliation import day_bounds

REVENUE = "department_revenue:"


def _net_by_department(session: Session, channel: str, day: date) -> dict[str, int]:
    start, end = day_bounds(day)
    receipt = aliased(LedgerTransfer)  # the ``pay:<order>`` transfer that opens a payment's batch
    paid_through_channel = (select(receipt.batch_id)
                            .where(receipt.code == "payment", receipt.created_at >= start, receipt.created_at < end,
                                   receipt.debit_account_id == postings.channel_receivable(channel)))
    allocations = session.execute(select(LedgerTransfer.amount, LedgerTransfer.credit_account_id,
                                         LedgerTransfer.reference)
                                  .where(LedgerTransfer.batch_id.in_(paid_through_channel),
                                         LedgerTransfer.credit_account_id.startswith(REVENUE))).all()
    net: dict[str, int] = defaultdict(int)
    for row in allocations:
        net[row.credit_account_id.split(":")[1]] += row.amount
    # Refunds of those notices the channel paid itself: the refund batches without a treasury refund.
    notices = {row.reference for row in allocations}
    funded = aliased(LedgerTransfer)
    from_treasury = select(funded.batch_id).where(funded.code == "reversal", funded.batch_id.is_not(None),
                                                  funded.id.startswith("treasury-refund:"))
    for chunk in _chunks(sorted(notices)):
        refunds = session.execute(select(LedgerTransfer.amount, LedgerTransfer.debit_account_id)
                                  .where(LedgerTransfer.code == "refund", LedgerTransfer.reference.in_(chunk),
                                         LedgerTransfer.debit_account_id.startswith(REVENUE),
                                         LedgerTransfer.credit_account_id == postings.refunds_payable(channel),
                                         LedgerTransfer.batch_id.not_in(from_treasury)))
        for row in refunds:
            net[row.debit_account_id.split(":")[1]] -= row.amount
    return {department: amount for department, amount in net.items() if amount > 0}


def _chunks(values: list[str], size: int = 500):
    for index in range(0, len(values), size):
        yield values[index:index + size]


class DayNotClosed(Problem):
    status, code, title = 422, "day_not_closed", "A day is settled once it has closed"


def settle_day(session: Session, channel: str, day: date, *, today: date) -> list[TransferResult]:
    """Post the day's settlement for ``channel``; running it again changes nothing.

    :raise DayNotClosed: ``day`` is not before ``today`` (Beijing time): a later payment of the
        same day would make the settlement's amount wrong and a second run a refused conflict.
    :raise LedgerError: the receivable would go below zero (nothing is posted).
    """
    if day >= today:
        raise DayNotClosed(f"{day} has not closed yet (today is {today})")
    # Lock the receivable before reading: a same-day refund committing across midnight locks it
    # too before deciding who funds it (payments._funded_by_treasury), so it is seen here or
    # decided after this settlement, as a refund from the treasury.
    begin_write(session)
    session.get(LedgerAccount, postings.channel_receivable(channel), with_for_update=True)
    specs = [TransferSpec(f"settle:{day.isoformat()}:{channel}:{department}", postings.treasury_settlement(department),
                          postings.channel_receivable(channel), amount, "settlement")
             for department, amount in sorted(_net_by_department(session, channel, day).items())]
    return create_transfers(session, specs, batch_id=f"settle:{day.isoformat()}:{channel}") if specs else []
