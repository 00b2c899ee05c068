"""Periodic work of the licences node (Celery beat; ``xsn run`` embeds beat in its worker).

* ``licenses.expire`` (hourly): licences whose validity ended become ``expired``.
* ``licenses.deliver_notifications`` (every 30 s): the outbox sweeper, sending what the
  after-response delivery could not (hub down, process killed).
* ``licenses.purge_abandoned`` (hourly): pending licences left by a seal-node failure of a
  request without an idempotency key (no retry can complete them) are deleted after a day, a
  keyed amendment's once its key's retention is over (``lifecycle.IDEMPOTENCY_KEY_RETENTION``).
* ``licenses.resume_bulk_jobs`` (every 60 s): bulk jobs left running by a runner that was
  killed (its lease lapsed) or stopped (a ``/run`` call that reached its time limit and was not
  called again) are carried on to the end.
"""

from __future__ import annotations

from common.ops.tasks import celery_app, service_app


@celery_app.task(name="licenses.expire", ignore_result=True)
def expire() -> int:
    from common.db import get_db
    from licenses.lifecycle import expire_due

    app = service_app("licenses")
    with app.app_context(), get_db(app).session() as session:
        return expire_due(session)


@celery_app.task(name="licenses.purge_abandoned", ignore_result=True)
def purge_abandoned() -> int:
    from common.db import get_db
    from licenses.lifecycle import purge_abandoned as purge

    app = service_app("licenses")
    with app.app_context(), get_db(app).session() as session:
        return purge(session)


@celery_app.task(name="licenses.deliver_notifications", ignore_result=True)
def deliver_notifications() -> int:
    import licenses

    return licenses.deliver_notifications(service_app("licenses"))


@celery_app.task(name="licenses.resume_bulk_jobs", ignore_result=True)
def resume_bulk_jobs() -> int:
    from common.db import get_db
    from licenses.bulk import jobs

    app = service_app("licenses")
    config = app.config
    with app.app_context(), get_db(app).session() as session:
        return jobs.resume_abandoned(session, app.extensions["licenses"]["deps"],
                                     batch=int(config["LICENSES_BULK_BATCH"]),
                                     lease_seconds=float(config["LICENSES_BULK_LEASE_SECONDS"]),
                                     inflight=int(config["LICENSES_BULK_INFLIGHT"]))


@celery_app.on_after_finalize.connect
def _schedule(sender, **_kwargs) -> None:
    sender.add_periodic_task(3600.0, expire.s().set(expires=3600), name="licenses: expire licences")
    sender.add_periodic_task(3600.0, purge_abandoned.s().set(expires=3600), name="licenses: purge abandoned")
    sender.add_periodic_task(30.0, deliver_notifications.s().set(expires=30), name="licenses: deliver notifications")
    sender.add_periodic_task(60.0, resume_bulk_jobs.s().set(expires=60), name="licenses: resume bulk jobs")
