"""An attempt's claim: the one write that decides which copy of a worker's task sends.

The relay hands (row id, attempt) pairs to the workers; a broker may deliver one task twice
(``acks_late`` redelivers a task whose worker looked lost, and a retry can start beside a
slow first run). Each copy claims its attempt before it calls the outside party, and only
the copy whose claim changed the row sends.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from messaging.models import Delivery, WebhookEvent

log = structlog.get_logger("xsn.messaging.claims")

IN_FLIGHT = ("dispatched", "sending")  # handed to a worker; claimed by it and being sent


def claim(session: Session, model: type[Delivery] | type[WebhookEvent], row_id: int | str, attempt: int,
          now: datetime) -> bool:
    """``dispatched`` with ``attempt`` -> ``sending`` (not committed); False if the row has moved on.

    One conditional UPDATE, not a check read first and a write after: two copies of one task
    would both pass the check and both send. On PostgreSQL the second copy's UPDATE waits for
    the first's row lock and then matches nothing; on SQLite the caller holds the write lock
    (``common.db.begin_write``). The caller commits before it sends. ``dispatched_at`` restarts,
    so the sweeper counts a claimed row's time from its claim.
    """
    claimed = session.execute(update(model).where(model.id == row_id, model.status == "dispatched",
                                                  model.attempt == attempt)
                              .values(status="sending", dispatched_at=now)
                              .execution_options(synchronize_session=False)).rowcount
    if not claimed:
        row = session.execute(select(model.status, model.attempt).where(model.id == row_id)).first()
        log.info("attempt_not_claimed", table=model.__tablename__, id=row_id, attempt=attempt,
                 reason=_why_not_claimed(row, attempt), status=row and row.status, row_attempt=row and row.attempt)
    return bool(claimed)


def still_claimed(session: Session, model: type[Delivery] | type[WebhookEvent], row_id: int | str, attempt: int,
                  outcome: str) -> bool:
    """Whether the row is still ``sending`` with ``attempt``, checked and held (not committed);
    False, with an INFO line saying why ``outcome`` is dropped, if the row has moved on.

    A send can outlast ``stuck_after`` (an SMTP batch of 100, a slow carrier): the sweeper then
    re-queues the row and a new attempt runs. The slow worker's outcome belongs to an attempt the
    row no longer holds; written anyway, it overwrote the new attempt's state and finished the
    recipient a second time. One conditional UPDATE that changes nothing, not a read: it takes
    the row lock (PostgreSQL; on SQLite the write lock) until the caller commits the outcome, so
    the sweeper cannot move the row between this check and that write.
    """
    held = session.execute(update(model).where(model.id == row_id, model.status == "sending",
                                               model.attempt == attempt)
                           .values(status=model.status)
                           .execution_options(synchronize_session=False)).rowcount
    if not held:
        row = session.execute(select(model.status, model.attempt).where(model.id == row_id)).first()
        log.info("outcome_dropped", table=model.__tablename__, id=row_id, attempt=attempt, outcome=outcome,
                 reason=_why_dropped(row, attempt), status=row and row.status, row_attempt=row and row.attempt)
    return bool(held)


def _why_not_claimed(row, attempt: int) -> str:
    """Why a claim of ``attempt`` changed nothing, from the row's (status, attempt) or None."""
    if row is None:
        return "no such row"
    if (row.status, row.attempt) == ("sending", attempt):
        return "another copy of this task claimed it"
    return "the row has moved on"


def _why_dropped(row, attempt: int) -> str:
    """Why the row no longer holds ``attempt``'s outcome, from its (status, attempt) or None."""
    if row is None:
        return "no such row"
    if row.attempt == attempt:
        return "the sweeper re-queued it (the send outlasted stuck_after)"
    if row.attempt > attempt:
        return "a later attempt has it"
    return "the row has moved on"
