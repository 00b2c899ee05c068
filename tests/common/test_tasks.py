"""A real Celery worker process consumes the broker (SQLite transport; Redis in CI)."""

from __future__ import annotations

import os
import sys

import pytest

from common.ops.tasks import make_celery
from tests.support.suite import process, wait_for


def run_worker_until(marker, broker, send):
    """Start a worker, ``send()`` a task, and wait until the task has written ``marker``.

    :raise AssertionError: the worker died, or the marker was not written within 60 s.
    """
    env = dict(os.environ, XSN_BROKER_URL=broker)
    argv = [sys.executable, "-m", "celery", "-A", "common.ops.tasks", "worker", "--pool", "solo", "--concurrency",
            "1", "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle",
            "--hostname", f"t{os.getpid()}@%h"]
    # a warm shutdown takes seconds on a loaded machine: 30 s before it is killed
    with process(argv, env=env, stop_wait_s=30) as worker:
        send()

        def written() -> bool:
            assert worker.poll() is None, "worker died"
            return marker.exists()

        wait_for(written, 60, "the task's marker", interval=0.2)
        return marker.read_text()


def test_worker_runs_task_over_sqlite_broker(tmp_path):
    broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    marker = tmp_path / "pong"
    app = make_celery(broker=broker)
    result = run_worker_until(marker, broker, lambda: app.send_task("xsn.ping", args=[str(marker)]))
    assert result and result.startswith("pong ")
    assert int(result.split()[1]) != os.getpid()  # ran in the worker process, not here


@pytest.mark.services
def test_worker_runs_task_over_redis(tmp_path, redis_url):
    marker = tmp_path / "pong"
    app = make_celery(broker=redis_url)
    result = run_worker_until(marker, redis_url, lambda: app.send_task("xsn.ping", args=[str(marker)]))
    assert result and result.startswith("pong ")
