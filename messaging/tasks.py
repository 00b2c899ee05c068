"""Celery tasks of the message hub: relay, delivery batches, webhook events, sweeper.

Beat sends ``messaging.relay`` every ``XSN_MESSAGING_RELAY_INTERVAL`` seconds (and the API
asks for a run after each send) and ``messaging.sweep`` every ``XSN_MESSAGING_SWEEP_INTERVAL``.
Tasks are acknowledged late and rejected when their worker dies (common.ops.tasks), so the
broker redelivers them; each is idempotent because an attempt runs only while its outbox row
still names that attempt.
"""

from __future__ import annotations

import os

from flask import Flask

from common.ops.tasks import celery_app, service_app


def _interval(name: str) -> float:
    from messaging import SETTINGS

    return float(os.environ.get(f"XSN_{name}") or SETTINGS[name])


def _hub_app() -> Flask:
    return service_app("messaging")  # one per worker process (common.ops.tasks)


def _webhook_sender(app: Flask):
    # One per app, like the app itself: it keeps its HTTP connections between batches.
    sender = app.extensions.get("messaging_webhook_sender")
    if sender is None:
        from messaging import wiring
        from messaging.channels.webhooks import WebhookSender

        sender = app.extensions["messaging_webhook_sender"] = WebhookSender(
            allow_private=wiring.allow_private_webhooks(app.config))
    return sender


@celery_app.task(name="messaging.relay", ignore_result=True)
def relay() -> int:
    """Claim due deliveries and events and send them to the workers in batches."""
    from common.db import get_db
    from messaging import delivery, dispatch, wiring

    app = _hub_app()
    with get_db(app).session() as session:
        return delivery.relay(session, dispatch.CeleryDispatcher(celery_app.send_task),
                              wiring.delivery_settings(app.config))


@celery_app.task(name="messaging.deliver", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def deliver(batch: list[list]) -> dict[str, int]:
    from common.db import get_db
    from messaging import delivery, wiring

    app = _hub_app()
    with get_db(app).session() as session:
        counts = delivery.deliver_batch(session, [(int(i), int(a)) for i, a in batch], wiring.channels(app.config),
                                        wiring.delivery_settings(app.config))
    if counts.get("queued") or any(k in counts for k in ("delivered", "failed")):
        relay.delay()  # fallbacks and final-state events are due now
    return counts


@celery_app.task(name="messaging.deliver_events", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def deliver_events(batch: list[list]) -> dict[str, int]:
    from common.db import get_db
    from messaging import events, wiring

    app = _hub_app()
    with get_db(app).session() as session:
        return events.deliver_events(session, [(str(i), int(a)) for i, a in batch], _webhook_sender(app).post,
                                     wiring.delivery_settings(app.config))


@celery_app.task(name="messaging.sweep", ignore_result=True)
def sweep() -> int:
    """Re-queue rows dispatched to a worker that never finished them."""
    from common.db import get_db
    from messaging import delivery, wiring

    app = _hub_app()
    with get_db(app).session() as session:
        return delivery.sweep(session, wiring.delivery_settings(app.config))


@celery_app.on_after_finalize.connect
def _schedule(sender, **_kwargs) -> None:
    every = _interval("MESSAGING_RELAY_INTERVAL")
    sender.add_periodic_task(every, relay.s().set(expires=every), name="messaging: relay the outbox")
    sweep_every = _interval("MESSAGING_SWEEP_INTERVAL")
    sender.add_periodic_task(sweep_every, sweep.s().set(expires=sweep_every), name="messaging: sweep stuck rows")


@celery_app.task(name="messaging.noop", ignore_result=True)
def noop() -> None:
    """Does nothing: the benchmark's baseline of raw task throughput (bench.messaging)."""
