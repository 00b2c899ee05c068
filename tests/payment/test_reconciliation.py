"""Reconciliation closes: each statement line matches exactly one posting or lands in a
difference; differences are resolved by recorded actions; settlement posts once per day."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from common.errors import Conflict
from payment import payments, reconciliation, settlement
from payment.channel_sim.keys import institution_keys
from payment.channel_sim.notifications import SimOrder, notification
from payment.channel_sim.statements import statement_file
from payment.channels.statements import MalformedStatement
from payment.ledger.checks import check_ledger
from payment.ledger.models import LedgerAccount
from payment.models import ReconDifference, StatementLineRow

MCH, APP = "1900000109", "2021000000000001"


@pytest.fixture
def paid_orders(session, issue):
    """Three wechat orders: two paid here, one paid at the channel only (its callback was lost)."""
    orders = []
    for i in range(3):
        notice = issue()
        order = payments.start_payment(session, notice, "wechat", actor="payer")
        session.commit()
        if i < 2:
            payments.confirm_payment(session, order.id, channel="wechat", channel_transaction_id=f"WX{i}",
                                     amount=order.amount, paid_at=datetime.now(UTC), actor="callback")
            session.commit()
        orders.append(SimOrder("wechat", order.id, order.amount, f"WX{i}", datetime.now(UTC)))
    return orders


def _import(session, orders, day=None):
    data, _type = statement_file("wechat", orders, merchant_id=MCH)
    day = day or datetime.now(reconciliation.SHANGHAI).date()
    statement = reconciliation.import_statement(session, "wechat", day, data, actor="person:auditor",
                                                expected_sha256=hashlib.sha256(data).hexdigest())
    session.commit()
    return statement


def _kinds(session, statement):
    return sorted(d.kind for d in reconciliation.differences(session, statement))


def test_a_clean_day_matches_every_line(session, paid_orders):
    statement = _import(session, paid_orders[:2])
    assert (statement.lines, statement.matched) == (2, 2)
    assert _kinds(session, statement) == []


def test_each_kind_of_difference_is_found(session, paid_orders):
    forged_amount = SimOrder("wechat", paid_orders[1].order_id, paid_orders[1].amount + 1, "WX1", datetime.now(UTC))
    lines = [paid_orders[0], paid_orders[0], forged_amount, paid_orders[2],
             SimOrder("wechat", "nobody", 5, "WX9", datetime.now(UTC))]
    statement = _import(session, lines)
    assert statement.matched == 1
    assert _kinds(session, statement) == ["amount_mismatch", "duplicate", "missing_here", "unknown_order"]
    outcomes = [r.outcome for r in session.scalars(select(StatementLineRow).order_by(StatementLineRow.line))]
    assert outcomes.count("matched") == 1 and len(outcomes) == 5


def test_an_order_paid_here_and_absent_from_the_statement_is_a_difference(session, paid_orders):
    statement = _import(session, paid_orders[:1])
    assert _kinds(session, statement) == ["missing_at_channel"]


def test_missing_here_is_posted_only_after_the_institution_confirms(session, paid_orders, app):
    statement = _import(session, paid_orders)
    diff = next(d for d in reconciliation.differences(session, statement) if d.kind == "missing_here")
    keys = institution_keys(app.config["VAR_DIR"])

    class Institution:
        def __init__(self, paid):
            self.paid = paid

        def query(self, channel, order_id):
            if not self.paid:
                return None
            signed = notification(keys, paid_orders[2], merchant_id=MCH, app_id=APP)
            return signed.headers, signed.body

    adapter = app.extensions["payment_channels"]["wechat"]
    with pytest.raises(reconciliation.ResolutionRefused):
        reconciliation.resolve(session, diff.id, "post", actor="person:auditor", reason="补记", adapter=adapter,
                               institution=Institution(paid=False))
    session.rollback()
    resolved = reconciliation.resolve(session, diff.id, "post", actor="person:auditor", reason="回调丢失，补记",
                                      adapter=adapter, institution=Institution(paid=True))
    session.commit()
    assert (resolved.status, resolved.resolution, resolved.resolved_by) == ("resolved", "post", "person:auditor")
    assert check_ledger(session).ok
    with pytest.raises(Conflict):
        reconciliation.resolve(session, diff.id, "acknowledge", actor="x", reason="again", adapter=adapter,
                               institution=Institution(paid=True))


def test_a_resolution_that_does_not_fit_is_refused(session, paid_orders, app):
    statement = _import(session, paid_orders[:1])
    diff = session.scalar(select(ReconDifference))
    with pytest.raises(reconciliation.ResolutionRefused):
        reconciliation.resolve(session, diff.id, "post", actor="x", reason="r",
                               adapter=app.extensions["payment_channels"]["wechat"], institution=None)
    assert statement.matched == 1


def test_a_statement_with_a_wrong_digest_or_imported_twice_is_refused(session, paid_orders):
    data, _type = statement_file("wechat", paid_orders[:2], merchant_id=MCH)
    day = datetime.now(reconciliation.SHANGHAI).date()
    with pytest.raises(MalformedStatement) as raised:
        reconciliation.import_statement(session, "wechat", day, data, actor="a", expected_sha256="0" * 64)
    assert raised.value.code == "statement_digest_mismatch"
    session.rollback()
    _import(session, paid_orders[:2])
    with pytest.raises(Conflict):
        _import(session, paid_orders[:2])


def test_settlement_moves_a_closed_days_net_once(session, paid_orders, department):
    day = datetime.now(reconciliation.SHANGHAI).date()
    with pytest.raises(settlement.DayNotClosed):  # a later payment today would change the amount
        settlement.settle_day(session, "wechat", day, today=day)
    tomorrow = day + timedelta(days=1)
    first = settlement.settle_day(session, "wechat", day, today=tomorrow)
    session.commit()
    assert [r.transfer.amount for r in first] == [2 * 4550]
    again = settlement.settle_day(session, "wechat", day, today=tomorrow)
    session.commit()
    assert [r.created for r in again] == [False]
    session.expire_all()
    treasury = session.get(LedgerAccount, f"treasury_settlement:{department[0]}")
    assert treasury.debits_posted == 2 * 4550
    assert check_ledger(session).ok


def test_a_day_without_payments_is_an_empty_statement_not_a_malformed_one():
    from payment.channels.statements import parse_statement

    data, _type = statement_file("wechat", [], merchant_id=MCH)
    assert parse_statement("wechat", data) == []
    forged = data.replace(b"`0.00", b"`1.00")  # a total without lines is still refused
    with pytest.raises(MalformedStatement):
        parse_statement("wechat", forged)


def test_a_difference_resolved_while_the_institution_was_asked_stays_as_the_first_resolution_left_it(
        session, paid_orders, app):
    """No lock is held across the query: another resolution may finish meanwhile, and then this
    one is refused (the payment it posted was the same money, a duplicate of nothing new)."""
    from common.db import get_db

    statement = _import(session, paid_orders)
    diff = next(d for d in reconciliation.differences(session, statement) if d.kind == "missing_here")
    keys = institution_keys(app.config["VAR_DIR"])
    adapter = app.extensions["payment_channels"]["wechat"]

    class Institution:
        def query(self, channel, order_id):
            with get_db(app).session() as other:  # a second auditor acknowledges it meanwhile
                reconciliation.resolve(other, diff.id, "acknowledge", actor="person:other", reason="已核实",
                                       adapter=adapter, institution=None)
                other.commit()
            signed = notification(keys, paid_orders[2], merchant_id=MCH, app_id=APP)
            return signed.headers, signed.body

    with pytest.raises(Conflict):
        reconciliation.resolve(session, diff.id, "post", actor="person:auditor", reason="补记", adapter=adapter,
                               institution=Institution())
    session.rollback()
    kept = session.get(ReconDifference, diff.id, populate_existing=True)
    assert (kept.resolution, kept.resolved_by) == ("acknowledge", "person:other")
    assert check_ledger(session).ok


def test_two_imports_of_the_same_day_at_once_give_one_statement_and_a_conflict(app, session, paid_orders):
    """An upload and a fetch of the same day together: the second import waits for the first (the
    write lock on SQLite, the unique index on PostgreSQL) and is refused 409, never a 500."""
    import threading

    from common.db import get_db
    from payment.models import Statement

    data, _type = statement_file("wechat", paid_orders[:2], merchant_id=MCH)
    day = datetime.now(reconciliation.SHANGHAI).date()
    reconciliation.import_statement(session, "wechat", day, data, actor="a", expected_sha256=None)
    outcome: list[BaseException | None] = []

    def second():
        with app.app_context(), get_db(app).session() as own:
            try:
                reconciliation.import_statement(own, "wechat", day, data, actor="b", expected_sha256=None)
                own.commit()
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - the outcome is what the test reads
                own.rollback()
                outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and not outcome  # the second import waits for the first's transaction
    session.commit()
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict), outcome
    assert outcome[0].code == "statement_exists"
    assert session.scalar(select(func.count()).select_from(Statement).where(Statement.day == day)) == 1
