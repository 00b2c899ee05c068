"""Periodic and requested work of the identity node (Celery; ``xsn run`` embeds beat in its worker).

* ``identity.deliver_notifications``: sends the notification outbox (password-reset SMS) to the
  message hub. A reset asks for a run at once (``identity._relay``); beat runs it every
  ``IDENTITY_NOTIFY_SWEEP_SECONDS`` as the sweeper, for runs lost with a broker or hub outage.
"""

from __future__ import annotations

from common.ops.tasks import celery_app, numeric_setting, service_app


@celery_app.task(name="identity.deliver_notifications", ignore_result=True)
def deliver_notifications() -> int:
    import identity

    return identity.deliver_notifications(service_app("identity"))


@celery_app.on_after_finalize.connect
def _schedule(sender, **_kwargs) -> None:
    from identity.config import SETTINGS

    every = numeric_setting("identity", SETTINGS, "IDENTITY_NOTIFY_SWEEP_SECONDS")
    sender.add_periodic_task(every, deliver_notifications.s().set(expires=every),
                             name="identity: deliver notifications")
