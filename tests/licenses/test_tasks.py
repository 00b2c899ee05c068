"""``licenses.tasks``: expiry, the outbox sweeper, the bulk runner, and their beat schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.ops import tasks as common_tasks
from common.ops.tasks import celery_app
from licenses import tasks
from licenses.issuing import today


@pytest.fixture
def worker_app(app, monkeypatch):
    monkeypatch.setitem(common_tasks._apps, "licenses", app)  # the worker's app, on this test's database
    return app


def test_expire_and_deliver(worker_app, h, node):
    h.issue_food(valid_from=(today() - timedelta(days=5)).isoformat(),
                 valid_until=(today() - timedelta(days=1)).isoformat())
    assert tasks.expire() == 1 and tasks.expire() == 0
    h.client.get("/my/licences", headers=h.holder("p-zhang"))  # 张三 is known: his issue is announced
    h.issue_residence()  # not closed, so the after-response delivery did not run: the sweeper sends it
    assert tasks.deliver_notifications() == 1 and tasks.deliver_notifications() == 0
    assert [m["template"] for m in node["notifier"].sent] == ["licence_issued"]


def test_resume_bulk_jobs_finishes_an_abandoned_job(worker_app, h):
    from common.db import get_db, utcnow
    from licenses.models import BulkJob

    rows = "holder_code,holder_name,name,sex,birth_date,id_number,address\n" + \
        f"{h.ZHANG},张三,张三,男,1990-01-01,{h.ZHANG},西安\n"
    job = h.client.post("/bulk-jobs?type_code=residence_permit", data=rows, headers=h.police,
                        content_type="text/csv").get_json()
    assert tasks.resume_bulk_jobs() == 0  # never started: not the sweeper's
    with get_db(worker_app).session() as session:  # as a runner killed two minutes ago leaves it
        row = session.get(BulkJob, job["id"])
        row.status, row.runner, row.lease_until = "running", "dead-runner", utcnow() - timedelta(minutes=2)
        session.commit()
    assert tasks.resume_bulk_jobs() == 1 and tasks.resume_bulk_jobs() == 0
    done = h.client.get(f"/bulk-jobs/{job['id']}", headers=h.police).get_json()
    assert (done["status"], done["issued"]) == ("done", 1)


def test_beat_schedule():
    celery_app.loader.import_default_modules()
    celery_app.finalize()
    schedule = celery_app.conf.beat_schedule
    assert schedule["licenses: expire licences"]["task"] == "licenses.expire"
    assert schedule["licenses: deliver notifications"]["schedule"] == 30.0
    assert schedule["licenses: purge abandoned"]["task"] == "licenses.purge_abandoned"
    assert schedule["licenses: resume bulk jobs"]["task"] == "licenses.resume_bulk_jobs"
