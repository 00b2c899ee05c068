"""Periodic work of the seal node: signed checkpoints of the signature log, every few seconds.

The beat scheduler (``celery beat``; ``xsn run`` embeds it in its worker) sends
``seal.log.publish_checkpoint`` (the task's name) every ``XSN_SEAL_LOG_CHECKPOINT_INTERVAL`` seconds (5 by
default). The task signs a checkpoint when the log grew since the newest one and does nothing
otherwise, so the log is committed to by a signed tree head within seconds of every append
whether or not anyone is reading it. Readers still get a fresh one on demand (the lazy path in
``seal.log.checkpoints.latest_checkpoint``) if the worker is behind or stopped.
"""

from __future__ import annotations

from common.ops.tasks import celery_app, numeric_setting, service_app


def checkpoint_interval() -> float:
    """Seconds between publications: the seal service's own setting, read the same way."""
    from seal.config import SETTINGS

    return numeric_setting("seal", SETTINGS, "SEAL_LOG_CHECKPOINT_INTERVAL")




@celery_app.task(name="seal.log.publish_checkpoint", ignore_result=True)
def publish_checkpoint() -> int | None:
    """Sign and store a checkpoint if the log grew; returns its tree size, or None if it did not grow."""
    from common.db import get_db
    from seal.log.checkpoints import newest_checkpoint
    from seal.log.service import LogSettings, publish
    from seal.log.tree import log_size

    app = service_app("seal")
    with app.app_context(), get_db(app).session() as session:
        newest = newest_checkpoint(session)
        if newest is not None and newest.tree_size >= log_size(session):
            return None
        return publish(session, LogSettings.from_config(app.config)).tree_size


@celery_app.on_after_finalize.connect
def _schedule(sender, **_kwargs) -> None:
    interval = checkpoint_interval()
    # A run that waited longer than one interval in the queue is superseded by the next one.
    sender.add_periodic_task(interval, publish_checkpoint.s().set(expires=interval),
                             name="seal: publish a log checkpoint")
