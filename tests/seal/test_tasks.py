"""``seal.tasks``: the beat-driven publisher of signed log checkpoints."""

from __future__ import annotations

import pytest

from common.db import get_db
from common.ops import tasks as common_tasks
from common.ops.tasks import celery_app
from seal import tasks
from seal.log import appends, checkpoints, proofs


@pytest.fixture
def app(make_app, monkeypatch):
    app = make_app("seal", SEAL_LOG_ORIGIN="xsn.test/seal-log")
    monkeypatch.setitem(common_tasks._apps, "seal", app)  # the worker's app, on this test's database
    return app


def append(app, count: int) -> None:
    with get_db(app).session() as session:
        for i in range(count):
            appends.append_event(session, {"type": "sign", "time": "2026-07-01T00:00:00Z", "request_id": f"r{i}"})
        session.commit()


def test_the_task_signs_a_checkpoint_when_the_log_grew_and_only_then(app):
    assert tasks.publish_checkpoint() == 0  # an empty log still gets a signed (empty) tree head
    assert tasks.publish_checkpoint() is None
    append(app, 3)
    assert tasks.publish_checkpoint() == 3
    assert tasks.publish_checkpoint() is None  # nothing new: nothing signed
    append(app, 2)
    assert tasks.publish_checkpoint() == 5
    with get_db(app).session() as session:
        newest = checkpoints.newest_checkpoint(session)
        assert newest.tree_size == 5 and bytes(newest.root_hash) == proofs.root_hash(session, 5)
        assert newest.note.startswith("xsn.test/seal-log\n5\n")


def test_beat_sends_it_every_checkpoint_interval(monkeypatch):
    celery_app.loader.import_default_modules()
    celery_app.finalize()
    entry = celery_app.conf.beat_schedule["seal: publish a log checkpoint"]
    assert entry["task"] == tasks.publish_checkpoint.name == "seal.log.publish_checkpoint"
    assert entry["schedule"] == tasks.checkpoint_interval() == 5.0
    assert entry["options"]["expires"] == 5.0  # a run that waited a whole interval is skipped
    monkeypatch.setenv("XSN_SEAL_LOG_CHECKPOINT_INTERVAL", "2")
    assert tasks.checkpoint_interval() == 2.0
