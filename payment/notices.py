"""Payment notices (缴款通知书): issuing, finding, cancelling and expiring them.

A collecting department (执收单位) issues a notice for a payer with items from the fee
catalogue; the notice gets a payment code (缴款码, :class:`common.values.codes.PaymentCode`)
whose serial is drawn at random, so one code says nothing about the next.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.crypto.pii import PiiCipher, mask_id_number
from common.db import begin_write, utcnow
from common.errors import Forbidden, NotFound, Problem, ValidationFailed
from common.values.codes import CitizenId, CreditCode, InvalidCode, PaymentCode
from payment import notify, states
from payment.models import Fee, Notice, NoticeItem

MAX_ITEMS = 50
MAX_AMOUNT = 10**12  # fen: ten billion yuan; beyond any fee, far inside BIGINT
NON_TAX_PAYMENT_TYPE = 1  # the code's two "channel / payment type" digits for fees and non-tax revenue


class IdempotencyKeyReused(Problem):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused with a different request"


@dataclass(frozen=True)
class ItemRequest:
    fee_code: str
    quantity: int
    unit_amount: int | None = None


@dataclass(frozen=True)
class NoticeRequest:
    payer_kind: str
    payer_name: str
    payer_id: str
    items: tuple[ItemRequest, ...]
    total_amount: int
    due_date: date
    case_reference: str | None = None
    late_fee_per_day_permille: int | None = None
    payer_subject: str | None = None

    def fingerprint(self) -> str:
        body = json.dumps({**self.__dict__, "items": [i.__dict__ for i in self.items],
                           "due_date": self.due_date.isoformat()}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()


def _field_error(field: str, message: str, code: str = "validation_failed") -> ValidationFailed:
    return ValidationFailed(message, code=code, errors={"json": {field: [message]}})


def canonical_payer_id(kind: str, raw: str) -> str:
    """:raise ValidationFailed: not a valid GB 11643 ID number / GB 32100 credit code for ``kind``."""
    try:
        if kind == "person":
            return CitizenId.parse(raw).value
        if kind == "organisation":
            return CreditCode.parse(raw).value
    except InvalidCode as exc:
        raise _field_error("payer_id", str(exc), code=exc.code) from None
    raise _field_error("payer_kind", "person or organisation")


def _priced_items(session: Session, department_code: str, items: tuple[ItemRequest, ...]) -> list[NoticeItem]:
    if not 1 <= len(items) <= MAX_ITEMS:
        raise _field_error("items", f"a notice has 1-{MAX_ITEMS} items")
    fees = {fee.code: fee for fee in session.scalars(select(Fee).where(Fee.code.in_({i.fee_code for i in items})))}
    priced = []
    for line, item in enumerate(items, start=1):
        fee = fees.get(item.fee_code)
        if fee is None or not fee.active:
            raise _field_error("items", f"line {line}: unknown fee code {item.fee_code!r}", code="unknown_fee_code")
        if fee.department_code != department_code:
            raise Forbidden(f"line {line}: fee {fee.code} is collected by {fee.department_name}",
                            code="fee_of_another_department")
        unit = fee.unit_amount if fee.unit_amount is not None else item.unit_amount
        if item.unit_amount is not None and fee.unit_amount is not None and item.unit_amount != fee.unit_amount:
            raise _field_error("items", f"line {line}: fee {fee.code} costs {fee.unit_amount} fen",
                               code="amount_mismatch")
        if type(unit) is not int or not 0 < unit <= MAX_AMOUNT:
            raise _field_error("items", f"line {line}: the unit amount is a positive integer of fen",
                               code="invalid_amount")
        if type(item.quantity) is not int or not 0 < item.quantity <= 10_000:
            raise _field_error("items", f"line {line}: the quantity is 1-10000", code="invalid_quantity")
        priced.append(NoticeItem(line=line, fee_code=fee.code, fee_name=fee.name, quantity=item.quantity,
                                 unit_amount=unit, amount=unit * item.quantity, refunded_amount=0))
    return priced


def _new_payment_code(session: Session, today: date) -> str:
    for _ in range(20):
        code = PaymentCode.build(secrets.randbelow(10**9), year=today.year, channel=NON_TAX_PAYMENT_TYPE).value
        if session.scalar(select(Notice.id).where(Notice.payment_code == code)) is None:
            return code
    raise RuntimeError("no free payment code after 20 draws")  # 10^9 serials a year: not expected


def issue_notice(session: Session, cipher: PiiCipher, request: NoticeRequest, *, department_code: str,
                 department_name: str, actor: str, idempotency_key: str | None, today: date) -> tuple[Notice, bool]:
    """Issue a notice, or return the one an earlier request with the same key issued.

    :return: ``(notice, created)``.
    :raise ValidationFailed: bad payer, items, amounts or dates (nothing is written).
    :raise IdempotencyKeyReused: the key was used for a different request.
    """
    fingerprint = request.fingerprint()
    if idempotency_key:
        earlier = session.scalar(select(Notice).where(Notice.department_code == department_code,
                                                      Notice.idempotency_key == idempotency_key))
        if earlier is not None:
            if earlier.request_hash != fingerprint:
                raise IdempotencyKeyReused("this Idempotency-Key was used for another notice")
            return earlier, False
    payer_id = canonical_payer_id(request.payer_kind, request.payer_id)
    name = (request.payer_name or "").strip()
    if not 1 <= len(name) <= 100:
        raise _field_error("payer_name", "the payer's name is 1-100 characters")
    items = _priced_items(session, department_code, request.items)
    total = sum(item.amount for item in items)
    if request.total_amount != total:
        raise _field_error("total_amount", f"the items add up to {total} fen, not {request.total_amount}",
                           code="total_mismatch")
    if request.due_date < today:
        raise _field_error("due_date", "the due date is in the past")
    notice = Notice(payment_code=_new_payment_code(session, today), department_code=department_code,
                    department_name=department_name, payer_kind=request.payer_kind, payer_name=name,
                    payer_id_encrypted=cipher.encrypt("payer_id", payer_id),
                    payer_index=cipher.index("payer_id", payer_id), payer_id_masked=mask_id_number(payer_id),
                    payer_subject=request.payer_subject, total_amount=total, paid_amount=0, refunded_amount=0,
                    due_date=request.due_date, late_fee_per_day_permille=request.late_fee_per_day_permille,
                    case_reference=request.case_reference, status="created", idempotency_key=idempotency_key,
                    request_hash=fingerprint, created_by=actor, created_at=utcnow(), items=items)
    try:
        with session.begin_nested():
            session.add(notice)
            session.flush()
    except IntegrityError:  # a concurrent twin with the same key won the race: answer with its notice
        if not idempotency_key:
            raise
        return issue_notice(session, cipher, request, department_code=department_code,
                            department_name=department_name, actor=actor, idempotency_key=idempotency_key,
                            today=today)
    states.record_issue(session, notice, actor=actor)
    notify.notice_issued(session, notice)
    return notice, True


def get_notice(session: Session, notice_id: str) -> Notice:
    """:raise NotFound: no such notice."""
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound(f"no notice {notice_id}", code="notice_not_found")
    return notice


def find_by_payment_code(session: Session, payment_code: str, payer_name: str) -> Notice:
    """A payer's lookup (缴款码 + name): the same answer for a wrong code and a wrong name, so the
    lookup cannot be used to learn which codes exist.

    :raise NotFound: no notice with that code and name.
    """
    notice = session.scalar(select(Notice).where(Notice.payment_code == payment_code.strip()))
    if notice is None or notice.payer_name != payer_name.strip():
        raise NotFound("no notice with this payment code and name", code="notice_not_found")
    return notice


def notices_of_payer(session: Session, cipher: PiiCipher, payer_id: str, *, limit: int = 100) -> list[Notice]:
    index = cipher.index("payer_id", payer_id)
    return list(session.scalars(select(Notice).where(Notice.payer_index == index)
                                .order_by(Notice.created_at.desc()).limit(limit)))


def cancel_notice(session: Session, notice: Notice, *, actor: str, reason: str) -> None:
    """:raise InvalidTransition: paid, refunded, expired or already cancelled.

    Re-read under the row lock: a payment confirmed since ``notice`` was loaded must win, not be
    overwritten by a stale "paying" turned "cancelled".
    """
    begin_write(session)
    notice = session.get(Notice, notice.id, with_for_update=True, populate_existing=True)
    states.transition(session, notice, "cancelled", actor=actor, reason=reason)


def expire_due_notices(session: Session, today: date, *, limit: int = 1000) -> int:
    """Expire unpaid notices past their due date (a scheduled task); returns how many.

    Only ``created`` ones: a ``paying`` notice has an order in flight whose outcome the
    channel query settles first (a payment must never land on an expired notice unseen).
    """
    begin_write(session)  # a notice paid meanwhile is not "created" any more, and stays paid
    due = session.scalars(select(Notice).where(Notice.status == "created", Notice.due_date < today)
                          .order_by(Notice.due_date).limit(limit).with_for_update(skip_locked=True))
    count = 0
    for notice in due:
        states.transition(session, notice, "expired", actor="system:expiry", reason=f"unpaid after {notice.due_date}")
        count += 1
    return count
