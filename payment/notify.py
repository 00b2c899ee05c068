"""What payers are told, through the message hub (templates of contract 4): a notice to pay,
and a receipt once paid. Written to the outbox with the change that causes it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from common.peers import outbox
from payment.models import Notice, Notification, Receipt


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _payer(notice: Notice) -> list[dict[str, str]]:
    return [{"subject": notice.payer_subject}] if notice.payer_subject else []


def notice_issued(session: Session, notice: Notice) -> None:
    outbox.enqueue(session, Notification, "payment_notice",
                   {"payment_code": notice.payment_code, "amount_yuan": _yuan(notice.total_amount),
                    "due_date": notice.due_date.isoformat(), "department": notice.department_name}, _payer(notice))


def notice_paid(session: Session, notice: Notice, receipt: Receipt) -> None:
    outbox.enqueue(session, Notification, "payment_receipt",
                   {"payment_code": notice.payment_code, "amount_yuan": _yuan(notice.paid_amount),
                    "receipt_number": f"{receipt.code}-{receipt.number}"}, _payer(notice))
