"""Stale orders (超时关单): an order the payer walked away from is asked about, closed at the
institution and here, and its notice takes payment again (or expires); a payment the
institution took anyway is posted once, through the same verification as a callback."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from common.db import get_db, utcnow
from payment import callbacks, payments, postings, stale_orders
from payment.channel_sim.keys import institution_keys
from payment.channel_sim.notifications import SimOrder, notification
from payment.ledger.checks import check_ledger
from payment.ledger.models import LedgerAccount, LedgerTransfer
from payment.ledger.transfers import TransferSpec
from payment.models import ChannelCallback, Notice, NoticeEvent, PaymentOrder
from payment.postings import SUSPENSE
from tests.conftest import need
from tests.payment.lock_waits import in_thread, statement_meanwhile

MCH, APP = "1900000109", "2021000000000001"


class Institution:
    """The institution as the sweep sees it: orders the payer paid, orders closed, a hook on close."""

    def __init__(self, keys):
        self.keys, self.paid, self.closed, self.queries, self.on_close = keys, {}, [], 0, None

    def pay(self, order):
        self.paid[order.id] = SimOrder("wechat", order.id, order.amount, f"WX{order.id[:10]}", datetime.now(UTC))

    def signed(self, order_id):
        signed = notification(self.keys, self.paid[order_id], merchant_id=MCH, app_id=APP)
        return signed.headers, signed.body

    def query(self, channel, order_id):
        self.queries += 1
        return self.signed(order_id) if order_id in self.paid else None

    def close_order(self, channel, order_id):
        if self.on_close:
            self.on_close(order_id)
        if order_id in self.paid:
            return "paid"
        self.closed.append(order_id)
        return "closed"


@pytest.fixture
def institution(app):
    return Institution(institution_keys(app.config["VAR_DIR"]))


@pytest.fixture
def adapter(app):
    return app.extensions["payment_channels"]["wechat"]


@pytest.fixture
def opened(session, issue):
    def opened_(**overrides):
        notice = issue(**overrides)
        order = payments.start_payment(session, notice, "wechat", actor="payer")
        session.commit()
        return notice, order

    return opened_


def _sweep(session, app, institution, timeout=timedelta(0)):
    counts = stale_orders.close_stale_orders(session, app.extensions["payment_channels"], institution,
                                             now=utcnow(), timeout=timeout)
    session.expire_all()
    return dict(counts)


def _revenue(session) -> int:
    rows = session.scalars(select(LedgerAccount).where(LedgerAccount.kind == "department_revenue"))
    return sum(a.credits_posted - a.debits_posted for a in rows)


def _balance(session, account_id) -> tuple[int, int]:
    account = session.get(LedgerAccount, account_id)
    return account.debits_posted, account.credits_posted


def _backdate_due(session, notice):
    session.get(Notice, notice.id).due_date = date.today() - timedelta(days=2)
    session.commit()


def test_a_young_order_is_left_alone(session, app, opened, institution):
    opened()
    assert _sweep(session, app, institution, timeout=timedelta(minutes=30)) == {}
    assert institution.queries == 0


def test_an_unpaid_stale_order_is_closed_and_its_notice_takes_payment_again(session, app, opened, institution):
    notice, order = opened()
    assert _sweep(session, app, institution) == {"closed": 1}
    assert institution.closed == [order.id]
    assert session.get(PaymentOrder, order.id).status == "closed"
    assert session.get(Notice, notice.id).status == "created"
    event = session.scalars(select(NoticeEvent).where(NoticeEvent.notice_id == notice.id)
                            .order_by(NoticeEvent.id.desc())).first()
    assert (event.from_status, event.to_status, event.actor) == ("paying", "created", "system:stale-orders")
    assert session.scalar(select(LedgerTransfer.id)) is None  # nothing posted
    assert _sweep(session, app, institution) == {}  # nothing left to do
    payments.start_payment(session, session.get(Notice, notice.id), "wechat", actor="payer")  # payable again


def test_a_stale_order_past_its_notices_due_date_expires_it(session, app, opened, institution):
    notice, _order = opened()
    _backdate_due(session, notice)
    assert _sweep(session, app, institution) == {"expired": 1}
    assert session.get(Notice, notice.id).status == "expired"


def test_a_stale_order_the_payer_did_pay_is_posted_not_closed(session, app, opened, institution):
    notice, order = opened()
    institution.pay(order)
    assert _sweep(session, app, institution) == {"paid": 1}
    assert institution.closed == []
    assert session.get(Notice, notice.id).status == "paid"
    assert _revenue(session) == 4550
    recorded = session.scalar(select(ChannelCallback).where(ChannelCallback.order_id == order.id))
    assert (recorded.outcome, recorded.source) == ("posted", "query")


def test_paid_between_the_query_and_the_close_is_posted(session, app, opened, institution):
    notice, order = opened()
    institution.on_close = lambda order_id: institution.pay(order)  # the payer pays just then
    assert _sweep(session, app, institution) == {"paid": 1}
    assert (institution.queries, institution.closed) == (2, [])
    assert session.get(Notice, notice.id).status == "paid"
    assert _revenue(session) == 4550


def test_an_unreachable_institution_changes_nothing(session, app, opened, institution):
    from common.errors import ServiceUnavailable

    notice, order = opened()

    def down(channel, order_id):
        raise ServiceUnavailable("down", code="channel_unavailable")

    institution.query = down
    assert _sweep(session, app, institution) == {"unreachable": 1}
    assert session.get(PaymentOrder, order.id).status == "open"
    assert session.get(Notice, notice.id).status == "paying"


def test_a_callback_that_lands_before_our_close_wins(session, app, opened, institution, adapter):
    """The race: the notification commits after our query and before we lock the order."""
    notice, order = opened()

    def callback_meanwhile(order_id):
        institution.pay(order)
        headers, body = institution.signed(order_id)
        institution.paid.pop(order_id)  # the institution answers "closed" all the same (lagging)
        with get_db(app).session() as other:
            assert callbacks.handle_callback(other, adapter, headers, body, now=time.time()).outcome == "posted"

    institution.on_close = callback_meanwhile
    assert _sweep(session, app, institution) == {"gone": 1}
    assert session.get(PaymentOrder, order.id).status == "paid"
    assert session.get(Notice, notice.id).status == "paid"
    assert _revenue(session) == 4550
    assert check_ledger(session).ok


def test_a_late_callback_after_the_close_pays_a_notice_that_still_takes_payment(session, app, opened, institution,
                                                                                 adapter):
    notice, order = opened()
    assert _sweep(session, app, institution) == {"closed": 1}
    institution.pay(order)  # the institution took the payment before it closed the order
    outcome = callbacks.handle_callback(session, adapter, *institution.signed(order.id), now=time.time())
    assert outcome.outcome == "posted"
    session.expire_all()
    assert session.get(Notice, notice.id).status == "paid"
    assert session.get(Notice, notice.id).paid_order_id == order.id
    assert _revenue(session) == 4550
    assert check_ledger(session).ok


def test_a_late_callback_for_an_expired_notice_is_recorded_and_returned_to_the_payer(session, app, opened,
                                                                                    institution, adapter):
    notice, order = opened()
    _backdate_due(session, notice)
    assert _sweep(session, app, institution) == {"expired": 1}
    institution.pay(order)
    headers, body = institution.signed(order.id)
    assert callbacks.handle_callback(session, adapter, headers, body, now=time.time()).outcome == "posted"
    assert callbacks.handle_callback(session, adapter, headers, body, now=time.time()).outcome == "duplicate"
    session.expire_all()
    assert session.get(Notice, notice.id).status == "expired"
    assert session.get(PaymentOrder, order.id).status == "returned"
    assert _revenue(session) == 0
    assert _balance(session, "channel_receivable:wechat") == (4550, 4550)  # received, and paid back
    assert _balance(session, "suspense") == (4550, 4550)
    assert _balance(session, "refunds_payable:wechat") == (4550, 4550)
    assert sorted(session.scalars(select(LedgerTransfer.id))) == sorted(
        [f"pay:{order.id}", f"return:{order.id}", f"return-paid:{order.id}"])
    assert check_ledger(session).ok


def _race(app, adapter, institution, order_id, headers, body) -> list[Exception]:
    """The sweep of ``order_id`` and its notification, released at once from two threads."""
    barrier, errors = threading.Barrier(2), []

    def sweep(own):
        stale_orders.close_stale_order(own, adapter, institution, order_id, now=utcnow())

    def callback(own):
        callbacks.handle_callback(own, adapter, headers, body, now=time.time())

    def run(step):
        with app.app_context(), get_db(app).session() as own:
            barrier.wait()
            try:
                step(own)
            except Exception as exc:  # noqa: BLE001 - collected and asserted by the caller
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(step,)) for step in (sweep, callback)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


@pytest.mark.services
def test_a_sweep_and_a_callback_racing_post_the_money_once(app, session, opened, institution, adapter,
                                                          postgres_url):
    """On PostgreSQL, a sweep and the order's notification run at once, many times over: whichever
    wins, the notice ends paid by that order, the money posted once, the ledger whole."""
    for _ in range(10):
        notice, order = opened()
        institution.pay(order)
        headers, body = institution.signed(order.id)
        institution.paid.pop(order.id)  # the sweep's query says unpaid: it goes on to close
        assert _race(app, adapter, institution, order.id, headers, body) == []
        session.expire_all()
        assert session.get(PaymentOrder, order.id).status == "paid"
        assert session.get(Notice, notice.id).status == "paid"
        assert session.get(Notice, notice.id).paid_order_id == order.id
    assert _revenue(session) == 10 * 4550
    assert check_ledger(session).ok


def test_a_returned_late_payment_and_the_one_statement_do_not_deadlock(session, app, opened, institution, adapter,
                                                                       monkeypatch):
    """The late payment of a closed order for an expired notice posts two batches in one
    transaction (into suspense, then back out through refunds payable); it stops after the
    first, and the one statement moving refunds_payable:wechat -> suspense starts meanwhile.
    Had the payment locked each batch's accounts as it came to it, it would hold suspense and
    wait for refunds_payable:wechat (which sorts before it), the statement hold that and wait
    for suspense."""
    db = get_db(app)
    if db.engine.dialect.name != "postgresql":
        need("XSN_TEST_DATABASE_URL (PostgreSQL): row locks are PostgreSQL's")
    notice, order = opened()
    _backdate_due(session, notice)
    assert _sweep(session, app, institution) == {"expired": 1}
    institution.pay(order)
    headers, body = institution.signed(order.id)
    first_done, go_on = threading.Event(), threading.Event()
    original = postings.post_unclaimed_payment

    def pausing(*args):
        original(*args)
        first_done.set()
        assert go_on.wait(30)

    monkeypatch.setattr(postings, "post_unclaimed_payment", pausing)

    def callback():
        with db.session() as own:
            return callbacks.handle_callback(own, adapter, headers, body, now=time.time()).outcome

    late, outcome = in_thread(callback)
    assert first_done.wait(30)
    statement = statement_meanwhile(db, [TransferSpec("s", "refunds_payable:wechat", SUSPENSE, 1, "adjustment")],
                                     late, go_on)
    assert outcome["value"] == "posted", outcome
    assert not isinstance(statement, Exception), statement
    session.expire_all()
    assert session.get(PaymentOrder, order.id).status == "returned"
