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


def test_run_bulk_job_runs_to_the_end(worker_app, h):
    rows = "holder_code,holder_name,name,sex,birth_date,id_number,address\n" + \
        f"{h.ZHANG},张三,张三,男,1990-01-01,{h.ZHANG},西安\n"
    job = h.client.post("/bulk-jobs?type_code=residence_permit", data=rows, headers=h.police,
                        content_type="text/csv").get_json()
    assert tasks.run_bulk_job(job["id"]) == "done"
    assert tasks.run_bulk_job("nope") == "missing"


def test_beat_schedule():
    celery_app.loader.import_default_modules()
    celery_app.finalize()
    schedule = celery_app.conf.beat_schedule
    assert schedule["licenses: expire licences"]["task"] == "licenses.expire"
    assert schedule["licenses: deliver notifications"]["schedule"] == 30.0
    assert schedule["licenses: purge abandoned"]["task"] == "licenses.purge_abandoned"
