"""Issuing, finding, cancelling and expiring payment notices (缴款通知书)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from common.errors import Forbidden, ValidationFailed
from common.values.codes import PaymentCode
from payment import notices, states
from payment.models import Fee, Notice, NoticeEvent


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_a_notice_gets_a_valid_payment_code_priced_items_and_an_encrypted_payer(issue, cipher, session):
    notice = issue()
    assert PaymentCode.is_valid(notice.payment_code)
    assert [(i.fee_code, i.quantity, i.unit_amount, i.amount) for i in notice.items] == [
        ("MKT-001", 2, 1000, 2000), ("MKT-003", 1, 2550, 2550)]
    assert notice.total_amount == 4550 and notice.status == "created"
    assert "11010519491231002X" not in notice.payer_id_encrypted
    assert cipher.decrypt("payer_id", notice.payer_id_encrypted) == "11010519491231002X"
    assert notice.payer_id_masked == "1101**********002X"
    assert [e.to_status for e in session.scalars(select(NoticeEvent))] == ["created"]


def test_payment_codes_are_not_sequential(issue):
    serials = [PaymentCode.parse(issue().payment_code).serial for _ in range(5)]
    assert len(set(serials)) == 5
    assert sorted(serials) != list(range(serials[0], serials[0] + 5))


@pytest.mark.parametrize(("overrides", "code"), [
    ({"payer_id": "11010519491231002Y"}, "invalid_citizen_id"),
    ({"payer_kind": "organisation", "payer_id": "91110000600037341X"}, "invalid_credit_code"),
    ({"items": (notices.ItemRequest("NOPE-1", 1),), "total_amount": 100}, "unknown_fee_code"),
    ({"total_amount": 4551}, "total_mismatch"),
    ({"items": (notices.ItemRequest("MKT-001", 1, 999),), "total_amount": 999}, "amount_mismatch"),
    ({"items": (notices.ItemRequest("MKT-003", 1),), "total_amount": 1}, "invalid_amount"),
    ({"items": (notices.ItemRequest("MKT-003", 1, -5),), "total_amount": -5}, "invalid_amount"),
    ({"items": (notices.ItemRequest("MKT-001", 0),), "total_amount": 0}, "invalid_quantity"),
    ({"items": ()}, "validation_failed"),
    ({"due_date": date.today() - timedelta(days=1)}, "validation_failed"),
    ({"payer_name": "  "}, "validation_failed"),
])
def test_bad_notices_are_refused_and_nothing_is_written(issue, session, overrides, code):
    with pytest.raises(ValidationFailed) as raised:
        issue(**overrides)
    assert raised.value.code == code
    session.rollback()
    assert _count(session, Notice) == 0 and _count(session, NoticeEvent) == 0


def test_a_fee_of_another_department_is_forbidden(session, issue):
    session.add(Fee(code="TAX-9", name="other", department_code="91110000600037341L", department_name="其他",
                    unit_amount=100, active=True))
    session.commit()
    with pytest.raises(Forbidden):
        issue(items=(notices.ItemRequest("TAX-9", 1),), total_amount=100)


def test_the_same_idempotency_key_returns_the_first_notice_and_refuses_another_body(issue, session, cipher,
                                                                                     department):
    first = issue(key="k-1")
    again = issue(key="k-1")
    assert again.id == first.id and _count(session, Notice) == 1
    with pytest.raises(notices.IdempotencyKeyReused):
        issue(key="k-1", case_reference="BJ-OTHER")


def test_a_payer_finds_a_notice_by_code_and_name_only(issue, session):
    notice = issue()
    assert notices.find_by_payment_code(session, notice.payment_code, "张三").id == notice.id
    for code, name in ((notice.payment_code, "李四"), ("61010026010000000000", "张三")):
        with pytest.raises(notices.NotFound) as raised:
            notices.find_by_payment_code(session, code, name)
        assert raised.value.code == "notice_not_found"


def test_notices_of_a_payer_by_blind_index(issue, session, cipher):
    issue()
    issue(payer_id="440524188001010014", payer_name="王五")
    assert [n.payer_name for n in notices.notices_of_payer(session, cipher, "11010519491231002X")] == ["张三"]


def test_cancel_records_who_and_why_and_a_cancelled_notice_cannot_be_cancelled_again(issue, session):
    notice = issue()
    notices.cancel_notice(session, notice, actor="client:test", reason="办件撤回")
    session.commit()
    event = session.scalars(select(NoticeEvent).order_by(NoticeEvent.id.desc())).first()
    assert (event.from_status, event.to_status, event.actor, event.reason) == ("created", "cancelled", "client:test",
                                                                               "办件撤回")
    with pytest.raises(states.InvalidTransition):
        notices.cancel_notice(session, notice, actor="client:test", reason="again")


def test_expiry_takes_only_unpaid_created_notices_past_due(issue, session):
    due = issue(due_date=date.today())
    later = issue(due_date=date.today() + timedelta(days=30))
    assert notices.expire_due_notices(session, date.today() + timedelta(days=1)) == 1
    session.commit()
    assert (due.status, later.status) == ("expired", "created")


def test_every_state_has_its_exits_declared():
    assert set(states.TRANSITIONS) >= {s for targets in states.TRANSITIONS.values() for s in targets}
