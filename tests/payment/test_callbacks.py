"""Channel notifications through the payment app: posted exactly once, every one recorded,
anything unverifiable refused with the ledger exactly as before."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from payment import callbacks, payments
from payment.channel_sim.keys import institution_keys
from payment.channel_sim.notifications import SimOrder, alipay_notification, notification, wechat_notification
from payment.ledger.checks import check_ledger
from payment.ledger.models import LedgerTransfer
from payment.models import ChannelCallback

MCH, APP = "1900000109", "2021000000000001"


@pytest.fixture
def keys(app):
    return institution_keys(app.config["VAR_DIR"])


@pytest.fixture
def open_order(session, issue):
    def open_(channel="wechat"):
        notice = issue()
        order = payments.start_payment(session, notice, channel, actor="payer")
        session.commit()
        return notice, SimOrder(channel, order.id, order.amount, f"{channel}-txn-{order.id[:6]}",
                                datetime.now(UTC))
    return open_


def _post(client, channel, signed):
    return client.post(f"/channels/{channel}/notify", data=signed.body, headers=signed.headers)


def _outcomes(session):
    session.expire_all()
    rows = session.scalars(select(ChannelCallback).order_by(ChannelCallback.id))
    return [(c.channel, c.outcome, c.reason) for c in rows]


def _transfers(session):
    return session.scalar(select(func.count()).select_from(LedgerTransfer))


def test_three_copies_out_of_order_post_once(client, session, keys, open_order):
    notice_a, order_a = open_order("wechat")
    notice_b, order_b = open_order("alipay")
    sends = [("alipay", alipay_notification(keys, order_b, APP)), ("wechat", wechat_notification(keys, order_a, MCH)),
             ("wechat", wechat_notification(keys, order_a, MCH)), ("alipay", alipay_notification(keys, order_b, APP)),
             ("wechat", wechat_notification(keys, order_a, MCH))]
    answers = [_post(client, channel, signed) for channel, signed in sends]
    assert [a.status_code for a in answers] == [200, 204, 204, 200, 204]
    assert answers[0].data == b"success"
    assert [o for _c, o, _r in _outcomes(session)] == ["posted", "posted", "duplicate", "duplicate", "duplicate"]
    session.expire_all()
    assert (notice_a.status, notice_b.status) == ("paid", "paid")
    assert _transfers(session) == 6 and check_ledger(session).ok


@pytest.mark.parametrize(("change", "reason"), [
    ("forged", "callback_bad_signature"),
    ("amount", "amount_mismatch"),
    ("unknown_order", "order_not_found"),
])
def test_unverifiable_or_wrong_notifications_are_refused_recorded_and_post_nothing(
        client, session, keys, open_order, tmp_path, change, reason):
    notice, order = open_order("wechat")
    if change == "forged":
        signed = wechat_notification(institution_keys(tmp_path), order, MCH)
    elif change == "amount":
        signed = wechat_notification(keys, SimOrder("wechat", order.order_id, order.amount - 1, order.transaction_id,
                                                    order.paid_at), MCH)
    else:
        signed = wechat_notification(keys, SimOrder("wechat", "no-such-order", 10, "x", order.paid_at), MCH)
    answer = _post(client, "wechat", signed)
    assert answer.status_code == 500 and answer.get_json()["code"] == "FAIL"
    assert _outcomes(session) == [("wechat", "rejected", reason)]
    assert _transfers(session) == 0 and session.get(type(notice), notice.id).status == "paying"
    assert check_ledger(session).ok


def test_a_notification_for_an_unknown_channel_is_404(client):
    answer = client.post("/channels/paypal/notify", data=b"{}")
    assert answer.status_code == 404 and answer.get_json()["code"] == "unknown_channel"


def test_the_query_fallback_finds_a_payment_whose_notification_never_came(session, keys, open_order, app):
    notice, order = open_order("bank")

    class Institution:
        def query(self, channel, order_id):
            assert (channel, order_id) == ("bank", order.order_id)
            signed = notification(keys, order, merchant_id=MCH, app_id=APP)
            return signed.headers, signed.body

    adapter = app.extensions["payment_channels"]["bank"]
    outcome = callbacks.resolve_by_query(session, adapter, Institution(), order.order_id, now=time.time())
    assert outcome.outcome == "posted"
    session.expire_all()
    assert session.get(type(notice), notice.id).status == "paid"
    assert _outcomes(session) == [("bank", "posted", None)]


def test_a_signed_notification_with_a_zoneless_time_or_an_overlong_id_is_refused_and_recorded(client, session, keys,
                                                                                               open_order):
    import json

    from payment.channels import bank

    notice, order = open_order("bank")
    for change in ({"paid_at": "2026-12-02T09:00:00"}, {"bank_txn_id": "x" * 65}):
        body = json.dumps({"notify_id": "n1", "order_id": order.order_id, "bank_txn_id": "BK1", "amount": order.amount,
                           "paid_at": "2026-12-02T01:00:00+00:00", **change}).encode()
        timestamp = str(int(time.time()))
        answer = client.post("/channels/bank/notify", data=body, headers={
            "X-Bank-Timestamp": timestamp, "X-Bank-Signature": bank.sign(keys.bank_secret, timestamp, body)})
        assert answer.status_code == 500 and answer.get_json()["result"] == "FAIL"
    assert _outcomes(session) == [("bank", "rejected", "callback_malformed")] * 2
    assert _transfers(session) == 0


def test_a_notification_and_the_query_fallback_at_once_post_once(app, session, keys, open_order):
    """The cashier's result page asks the institution (the query fallback) while the institution's
    notification arrives: each reads the order open, and only one may post. The notification is
    held just after its read of the order until the fallback has read it too, or for a second
    (the fallback is waiting for the notification's lock, as it should)."""
    from sqlalchemy import event

    from common.db import get_db
    from payment.models import NoticeEvent
    from tests.payment.lock_waits import in_thread

    notice, order = open_order("bank")
    signed = notification(keys, order, merchant_id=MCH, app_id=APP)
    adapter, engine = app.extensions["payment_channels"]["bank"], get_db(app).engine
    notifier_read, fallback_read = threading.Event(), threading.Event()
    threads: dict[str, int] = {}

    def after_read(_conn, _cursor, statement, _params, _context, _many) -> None:
        if not statement.lstrip().upper().startswith("SELECT") or "FROM payment_orders" not in statement:
            return
        if threading.get_ident() == threads.get("fallback"):
            fallback_read.set()
        elif threading.get_ident() == threads.get("notification") and not notifier_read.is_set():
            notifier_read.set()
            fallback_read.wait(1.0)

    class Institution:
        def query(self, channel, order_id):
            return signed.headers, signed.body

    def notify():
        threads["notification"] = threading.get_ident()
        with app.app_context(), get_db(app).session() as own:
            return callbacks.handle_callback(own, adapter, signed.headers, signed.body, now=time.time()).outcome

    def fall_back():
        threads["fallback"] = threading.get_ident()
        notifier_read.wait(10)
        with app.app_context(), get_db(app).session() as own:
            return callbacks.resolve_by_query(own, adapter, Institution(), order.order_id, now=time.time()).outcome

    event.listen(engine, "after_cursor_execute", after_read)
    try:
        (notifying, notified), (falling_back, fell_back) = in_thread(notify), in_thread(fall_back)
        notifying.join(30)
        falling_back.join(30)
    finally:
        event.remove(engine, "after_cursor_execute", after_read)
    assert sorted([notified["value"], fell_back["value"]]) == ["duplicate", "posted"]
    session.expire_all()
    events = session.scalars(select(NoticeEvent.to_status).where(NoticeEvent.notice_id == notice.id)).all()
    assert events.count("paid") == 1
    assert [o for _c, o, _r in _outcomes(session)] in (["posted", "duplicate"], ["duplicate", "posted"])
    assert _transfers(session) == 3 and check_ledger(session).ok
