"""A bulk send as one job: where its recipients are, and whether anything is still to do now.

A job is the one message of a bulk request (more recipients than ``MESSAGING_BATCH_SIZE``),
delivered in batches by the relay. Its status answers "is my send done?":

* ``running``: some recipient has a delivery due now or in a worker's hands, or an SMS awaits
  the carrier's receipt;
* ``waiting``: every recipient not yet final has a delivery due later (quiet hours, a scheduled
  time, a retry's back-off); ``next_attempt_at`` says when the first one goes;
* ``completed``: every recipient is final (delivered, read, failed or suppressed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import NotFound
from messaging.models import Delivery, Job, Message, Recipient


def job_status(session: Session, client_id: str, job_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The job's status, its message and recipient counts by status.

    ``counts`` always add up to ``total``; ``waiting`` counts the recipients whose next
    delivery is due after ``now``.

    :raise NotFound: no such job of this app (another app's is not found either).
    """
    now = now or utcnow()
    job = session.get(Job, job_id)
    if job is None or job.app != client_id:
        raise NotFound("no such job", code="job_not_found")
    message = session.scalars(select(Message).where(Message.job_id == job.id)).one()
    counts = dict(session.execute(select(Recipient.status, func.count()).where(Recipient.message_id == message.id)
                                  .group_by(Recipient.status)).all())
    waiting, next_at = session.execute(
        select(func.count(func.distinct(Delivery.recipient_id)), func.min(Delivery.next_attempt_at))
        .where(Delivery.message_id == message.id, Delivery.status == "queued", Delivery.next_attempt_at > now)).one()
    if message.status == "completed":
        status = "completed"
    elif waiting >= message.pending_count:
        status = "waiting"
    else:
        status = "running"
    return {"job_id": job.id, "message_id": message.id, "status": status, "total": job.total,
            "batches": job.batches, "counts": counts, "waiting": waiting,
            "next_attempt_at": next_at if status != "completed" else None, "created_at": job.created_at,
            "completed_at": message.completed_at}
