"""Periodic work of the payment node: expiring unpaid notices, closing stale orders, sealing e-receipts.

Beat sends ``payment.expire_notices`` every ``XSN_PAYMENT_EXPIRY_INTERVAL`` seconds,
``payment.close_stale_orders`` every ``XSN_PAYMENT_STALE_ORDER_INTERVAL`` seconds and
``payment.seal_receipts`` every ``XSN_PAYMENT_RECEIPT_INTERVAL`` seconds. All are idempotent:
a run that overlaps another, or repeats after a crash, finds nothing left to do.
"""

from __future__ import annotations

from datetime import date, timedelta

from common.ops.tasks import celery_app, numeric_setting, service_app


def _setting(name: str) -> float:
    from payment.config import SETTINGS

    return numeric_setting("payment", SETTINGS, name)


@celery_app.task(name="payment.expire_notices", ignore_result=True)
def expire_notices() -> int:
    from common.db import get_db
    from payment.notices import expire_due_notices

    app = service_app("payment")
    with app.app_context(), get_db(app).session() as session:
        count = expire_due_notices(session, date.today())
        session.commit()
        return count


@celery_app.task(name="payment.close_stale_orders", ignore_result=True)
def close_stale_orders() -> dict[str, int]:
    from common.db import get_db, utcnow
    from payment.stale_orders import close_stale_orders as close

    app = service_app("payment")
    with app.app_context(), get_db(app).session() as session:
        return dict(close(session, app.extensions["payment_channels"], app.extensions["payment_institution"],
                          now=utcnow(), timeout=timedelta(seconds=_setting("PAYMENT_ORDER_TIMEOUT"))))


@celery_app.task(name="payment.seal_receipts", ignore_result=True)
def seal_receipts() -> int:
    from common.db import get_db
    from payment.receipts import seal_pending

    app = service_app("payment")
    with app.app_context(), get_db(app).session() as session:
        return seal_pending(session, app.extensions["payment_sealer"])


@celery_app.task(name="payment.deliver_notifications", ignore_result=True)
def deliver_notifications() -> int:
    """The outbox sweeper: sends what the after-response delivery could not (hub down, crash)."""
    import payment

    return payment.deliver_notifications(service_app("payment"))


@celery_app.on_after_finalize.connect
def _schedule(sender, **_kwargs) -> None:
    expiry, receipts = _setting("PAYMENT_EXPIRY_INTERVAL"), _setting("PAYMENT_RECEIPT_INTERVAL")
    sender.add_periodic_task(expiry, expire_notices.s().set(expires=expiry), name="payment: expire notices")
    stale = _setting("PAYMENT_STALE_ORDER_INTERVAL")
    sender.add_periodic_task(stale, close_stale_orders.s().set(expires=stale), name="payment: close stale orders")
    sender.add_periodic_task(receipts, seal_receipts.s().set(expires=receipts), name="payment: seal receipts")
    sender.add_periodic_task(30.0, deliver_notifications.s().set(expires=30), name="payment: deliver notifications")
