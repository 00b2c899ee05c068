"""A real Celery worker process consumes the broker (SQLite transport; Redis in CI)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from common.ops.tasks import make_celery


def run_worker_until(marker, broker, send):
    env = dict(os.environ, XSN_BROKER_URL=broker)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "common.ops.tasks", "worker", "--pool", "solo",
         "--concurrency", "1", "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "--hostname", f"t{os.getpid()}@%h"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        send()
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            assert worker.poll() is None, "worker died"
            time.sleep(0.2)
        return marker.read_text() if marker.exists() else None
    finally:
        worker.terminate()  # a warm shutdown takes seconds on a loaded machine: wait, then insist
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


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
