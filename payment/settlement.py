"""Daily settlement (日终清算) to the treasury account of each department.

For a day and channel, each department is owed what was posted for it through that channel
on that day (Beijing time), less what was refunded through it that day; a day is settled once it
has closed (settling it again with other amounts is refused as a changed transfer). One transfer per department and
channel moves that from the channel's receivable to the department's treasury settlement
account; its id (``settle:<day>:<channel>:<department>``) makes running a day twice a replay.
The channel's receivable can never be credited beyond what it was debited (its account flag),
so no settlement can pay out money that was not collected.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.errors import Problem
from payment import postings
from payment.ledger.models import LedgerTransfer
from payment.ledger.transfers import TransferResult, TransferSpec, create_transfers
from payment.reconciliation import day_bounds


def _net_by_department(session: Session, channel: str, day: date) -> dict[str, int]:
    start, end = day_bounds(day)
    prefix = "department_revenue:"
    rows = session.execute(select(LedgerTransfer.id, LedgerTransfer.amount, LedgerTransfer.debit_account_id,
                                  LedgerTransfer.credit_account_id, LedgerTransfer.batch_id)
                           .where(LedgerTransfer.created_at >= start, LedgerTransfer.created_at < end,
                                  LedgerTransfer.code.in_(("payment", "refund"))))
    batches_through_channel = {row.batch_id for row in rows if row.debit_account_id ==
                               postings.channel_receivable(channel) or row.credit_account_id ==
                               postings.channel_receivable(channel)}
    rows = session.execute(select(LedgerTransfer.amount, LedgerTransfer.debit_account_id,
                                  LedgerTransfer.credit_account_id, LedgerTransfer.batch_id)
                           .where(LedgerTransfer.created_at >= start, LedgerTransfer.created_at < end,
                                  LedgerTransfer.batch_id.in_(batches_through_channel)))
    net: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.credit_account_id.startswith(prefix):  # an allocation to a department's revenue
            net[row.credit_account_id.split(":")[1]] += row.amount
        elif row.debit_account_id.startswith(prefix):  # a refund out of it
            net[row.debit_account_id.split(":")[1]] -= row.amount
    return {department: amount for department, amount in net.items() if amount > 0}


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
    specs = [TransferSpec(f"settle:{day.isoformat()}:{channel}:{department}", postings.treasury_settlement(department),
                          postings.channel_receivable(channel), amount, "settlement")
             for department, amount in sorted(_net_by_department(session, channel, day).items())]
    return create_transfers(session, specs, batch_id=f"settle:{day.isoformat()}:{channel}") if specs else []
