"""Daily reconciliation (对账) of each channel's statement against our postings, and its resolution.

Every statement line lands in exactly one place: matched to one paid order (same channel,
transaction and amount), or a difference. Every order we hold as paid through the channel on
that day and absent from the statement is a difference too. Differences are resolved only by
a recorded action of an authorised person or system, never silently:

- ``missing_here`` (paid at the channel, not here): ``post`` asks the institution for its
  signed account of the order (the query fallback) and posts it through the usual path, so
  nothing is posted on the statement's word alone;
- anything else: ``acknowledge`` with a reason (e.g. the channel's own correction next day).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from datetime import date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import begin_write, utcnow
from common.errors import Conflict, NotFound, Problem
from payment import callbacks
from payment.channels.base import ChannelAdapter
from payment.channels.statements import MalformedStatement, parse_statement
from payment.models import PaymentOrder, ReconDifference, Statement, StatementLineRow

SHANGHAI = ZoneInfo("Asia/Shanghai")
RESOLUTIONS = {"missing_here": ("post", "acknowledge"), "missing_at_channel": ("acknowledge",),
               "amount_mismatch": ("acknowledge",), "duplicate": ("acknowledge",), "unknown_order": ("acknowledge",)}


class ResolutionRefused(Problem):
    status, code, title = 422, "resolution_refused", "This difference cannot be resolved that way"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """A statement day is a day in Beijing time (the institutions cut their files at local midnight)."""
    start = datetime.combine(day, dtime.min, tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


def import_statement(session: Session, channel: str, day: date, data: bytes, *, actor: str,
                     expected_sha256: str | None) -> Statement:
    """Import and match a day's statement. One statement per channel and day.

    :raise MalformedStatement: the digest does not match or the file does not parse (nothing kept).
    :raise Conflict: that day's statement was already imported.
    """
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and expected_sha256.lower() != digest:
        raise MalformedStatement("the statement's SHA-256 does not match the one the channel published",
                                 code="statement_digest_mismatch")
    lines = parse_statement(channel, data)
    exists = Conflict(f"the {channel} statement of {day} is already imported", code="statement_exists")
    begin_write(session)  # an upload and a fetch of the same day at once: the check sees the last commit
    if session.scalar(select(Statement.id).where(Statement.channel == channel, Statement.day == day)):
        raise exists
    statement = Statement(channel=channel, day=day, sha256=digest, lines=len(lines),
                          total_amount=sum(x.amount for x in lines), matched=0, imported_by=actor,
                          imported_at=utcnow())
    try:
        with session.begin_nested():  # the savepoint keeps the caller's transaction usable
            session.add(statement)
    except IntegrityError as exc:  # PostgreSQL: the other import committed after our check
        raise exists from exc

    start, end = day_bounds(day)
    paid_here = {o.id: o for o in session.scalars(select(PaymentOrder).where(
        PaymentOrder.channel == channel, PaymentOrder.status == "paid", PaymentOrder.paid_at >= start,
        PaymentOrder.paid_at < end))}
    seen = Counter(x.channel_transaction_id for x in lines)
    first_of = set()

    def difference(kind: str, order_id: str | None, line: int | None, here: int | None, there: int | None) -> None:
        session.add(ReconDifference(statement_id=statement.id, kind=kind, order_id=order_id, line=line,
                                    amount_here=here, amount_at_channel=there, status="open"))

    for x in lines:
        outcome = "difference"
        if seen[x.channel_transaction_id] > 1 and x.channel_transaction_id in first_of:
            difference("duplicate", x.order_id, x.line, None, x.amount)
        else:
            first_of.add(x.channel_transaction_id)
            order = paid_here.pop(x.order_id, None) or session.get(PaymentOrder, x.order_id)
            if order is None or order.channel != channel:
                difference("unknown_order", x.order_id, x.line, None, x.amount)
            elif order.status != "paid":
                difference("missing_here", order.id, x.line, None, x.amount)
            elif order.amount != x.amount or order.channel_transaction_id != x.channel_transaction_id:
                difference("amount_mismatch", order.id, x.line, order.amount, x.amount)
            else:
                outcome = "matched"
                statement.matched += 1
        session.add(StatementLineRow(statement_id=statement.id, line=x.line, order_id=x.order_id,
                                     channel_transaction_id=x.channel_transaction_id, amount=x.amount,
                                     outcome=outcome))
    for order in paid_here.values():
        difference("missing_at_channel", order.id, None, order.amount, None)
    session.flush()
    return statement


def differences(session: Session, statement: Statement) -> list[ReconDifference]:
    return list(session.scalars(select(ReconDifference).where(ReconDifference.statement_id == statement.id)
                                .order_by(ReconDifference.kind, ReconDifference.line)))


def _open_difference(session: Session, difference_id: str, action: str, *, lock: bool) -> ReconDifference:
    """The difference, open and resolvable by ``action``; ``lock``: read under the write lock.

    :raise NotFound, Conflict, ResolutionRefused: as :func:`resolve`.
    """
    if lock:
        begin_write(session)
    diff = session.get(ReconDifference, difference_id, with_for_update=lock, populate_existing=lock)
    if diff is None:
        raise NotFound(f"no difference {difference_id}", code="difference_not_found")
    if diff.status != "open":
        raise Conflict("the difference is already resolved", code="difference_resolved")
    if action not in RESOLUTIONS[diff.kind]:
        raise ResolutionRefused(f"a {diff.kind} difference is resolved by {' or '.join(RESOLUTIONS[diff.kind])}")
    return diff


def resolve(session: Session, difference_id: str, action: str, *, actor: str, reason: str,
            adapter: ChannelAdapter, institution) -> ReconDifference:
    """Resolve one difference by a recorded action.

    :raise NotFound: no such difference.
    :raise Conflict: already resolved (also by a concurrent resolution of the same difference).
    :raise ResolutionRefused: the action does not fit the difference, or the institution's
        signed account does not confirm the payment (nothing is posted then).
    """
    if action == "post":
        # Looked at first without a lock, and decided below under it: no lock is held across the
        # call to the institution, and a payment posted twice by two resolutions is a duplicate.
        order_id = _open_difference(session, difference_id, action, lock=False).order_id
        outcome = callbacks.resolve_by_query(session, adapter, institution, order_id, now=time.time())
        if outcome is None or outcome.outcome == "rejected":
            raise ResolutionRefused("the institution's signed account does not confirm this payment",
                                    code="not_confirmed_by_channel")
    diff = _open_difference(session, difference_id, action, lock=True)
    diff.status, diff.resolution, diff.resolved_by, diff.resolved_at, diff.reason = (
        "resolved", action, actor, utcnow(), reason)
    session.flush()
    return diff
