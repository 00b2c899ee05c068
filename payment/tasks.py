"""Periodic work of the payment node: expiring unpaid notices, sealing e-receipts.

Beat sends ``payment.expire_notices`` every ``XSN_PAYMENT_EXPIRY_INTERVAL`` seconds and
``payment.seal_receipts`` every ``XSN_PAYMENT_RECEIPT_INTERVAL`` seconds. Both are idempotent:
a run that overlaps another, or repeats after a crash, finds nothing left to do.
"""

from __future__ import annotations

import os
from datetime import date

from common.ops.tasks import celery_app, service_app


def _setting(name: str) -> float:
    from payment.config import SETTINGS

    return float(os.environ.get(f"XSN_{name}") or SETTINGS[name])




@celery_app.task(name="payment.expire_notices", ignore_result=True)
def expire_notices() -> int:
    from common.db import get_db
    from payment.notices import expire_due_notices

    app = service_app("payment")
    with app.app_context(), get_db(app).session() as session:
        count = expire_due_notices(session, date.today())
        session.commit()
        return count


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
    sender.add_periodic_task(receipts, seal_receipts.s().set(expires=receipts), name="payment: seal receipts")
    sender.add_periodic_task(30.0, deliver_notifications.s().set(expires=30), name="payment: deliver notifications")
