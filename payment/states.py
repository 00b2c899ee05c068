"""The one place a notice changes state (缴款通知书状态).

::

    created ──pay started──▶ paying ──confirmed──▶ paid ──refund──▶ partially_refunded ──▶ refunded
       │  ▲                     │                                        │
       │  └──order closed───────┘                                        └──refund (rest)──▶ refunded
       ├──cancel──▶ cancelled        (created or paying with no confirmed payment)
       └──expire──▶ expired          (past the due date, unpaid)

A confirmation may also arrive for a notice still ``created`` (the payer paid, the order's
"paying" step was never seen here: a callback or a statement line found it), so ``created``
goes straight to ``paid`` too.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Conflict
from payment.models import Notice, NoticeEvent

TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"paying", "paid", "cancelled", "expired"}),
    "paying": frozenset({"created", "paid", "cancelled", "expired"}),
    "paid": frozenset({"partially_refunded", "refunded"}),
    "partially_refunded": frozenset({"partially_refunded", "refunded"}),
    "refunded": frozenset(),
    "cancelled": frozenset(),
    "expired": frozenset(),
}
PAYABLE = frozenset({"created", "paying"})


class InvalidTransition(Conflict):
    code = "invalid_notice_state"


def transition(session: Session, notice: Notice, to_status: str, *, actor: str, reason: str | None = None) -> None:
    """Move ``notice`` to ``to_status`` and record who did it and why.

    :raise InvalidTransition: the move is not in :data:`TRANSITIONS` (the notice is unchanged).
    """
    if to_status not in TRANSITIONS.get(notice.status, frozenset()):
        raise InvalidTransition(f"a {notice.status} notice cannot become {to_status}", status_now=notice.status)
    session.add(NoticeEvent(notice_id=notice.id, from_status=notice.status, to_status=to_status, actor=actor,
                            reason=reason, at=utcnow()))
    notice.status = to_status


def record_issue(session: Session, notice: Notice, *, actor: str) -> None:
    """The first event of every notice: it came to be, ``created``."""
    session.add(NoticeEvent(notice_id=notice.id, from_status=None, to_status=notice.status, actor=actor, at=utcnow()))
