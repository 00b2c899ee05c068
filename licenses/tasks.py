"""Periodic work of the licences node (Celery beat; ``xsn run`` embeds beat in its worker).

* ``licenses.expire`` (hourly): licences whose validity ended become ``expired``.
* ``licenses.deliver_notifications`` (every 30 s): the outbox sweeper, sending what the
  after-response delivery could not (hub down, process killed).
* ``licenses.purge_abandoned`` (hourly): pending licences left by a seal-node failure of a
  request without an idempotency key (no retry can complete them) are deleted after a day.
* ``licenses.run_bulk_job``: runs a bulk job to the end (sent by ``xsn licenses bulk run``).
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


@celery_app.task(name="licenses.run_bulk_job", ignore_result=True, acks_late=True)
def run_bulk_job(job_id: str) -> str:
    from common.db import get_db
    from licenses import bulk
    from licenses.models import BulkJob

    app = service_app("licenses")
    with app.app_context(), get_db(app).session() as session:
        job = session.get(BulkJob, job_id)
        while job is not None and job.status in ("validated", "running"):
            bulk.run_job(session, app.extensions["licenses"]["deps"], job,
                         batch=int(app.config["LICENSES_BULK_BATCH"]), max_seconds=60)
        return job.status if job else "missing"


@celery_app.on_after_finalize.connect
def _schedule(sender, **_kwargs) -> None:
    sender.add_periodic_task(3600.0, expire.s().set(expires=3600), name="licenses: expire licences")
    sender.add_periodic_task(3600.0, purge_abandoned.s().set(expires=3600), name="licenses: purge abandoned")
    sender.add_periodic_task(30.0, deliver_notifications.s().set(expires=30), name="licenses: deliver notifications")
