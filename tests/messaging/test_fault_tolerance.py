"""Fault tolerance with a real Celery worker on a real Redis of the test's own.

During a run of messages: the worker is killed with SIGKILL and restarted, the test's Redis
(never the machine's) is stopped and started empty, and the webhook receiver fails before it
recovers. Afterwards every message is delivered (its e-mail in the SMTP sink, its completion
event acknowledged by the receiver), no message has two webhook ids, and statuses are final.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import func, select
from werkzeug.wrappers import Request, Response

from common.db import get_db
from messaging.models import Message
from messaging.smtp_sink import read_mailbox
from messaging.smtp_sink import start as start_sink
from tests.support.suite import Served, beat_worker_argv, free_port, spawn, stop_group, wait_for

pytestmark = [pytest.mark.services]
MESSAGES = 60


class OwnRedis:
    """A redis-server of this test alone, on a free port, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.port, self.directory, self.proc = free_port(), directory, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """:raise AssertionError: it did not answer within 10 s, or it exited."""
        self.proc = spawn(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", str(self.directory)])
        wait_for(self._answers, 10, "redis-server's start", interval=0.05)

    def _answers(self) -> bool:
        assert self.proc.poll() is None, f"redis-server exited with {self.proc.returncode}"
        try:
            return bool(redis.Redis.from_url(self.url).ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            stop_group(self.proc)


class Receiver:
    """Answers 500 to its first ``failures`` requests, then 204; remembers every webhook id."""

    def __init__(self, failures: int) -> None:
        self.failures, self.lock = failures, threading.Lock()
        self.acked: dict[str, bytes] = {}
        self.requests = 0
        self.served = Served(self.app)
        self.url = f"{self.served.url}/hook"

    def app(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.requests += 1
            failing = self.requests <= self.failures
            if not failing:
                self.acked.setdefault(request.headers["webhook-id"], request.get_data())
        return Response(status=500 if failing else 204)(environ, start_response)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return spawn(beat_worker_argv(log.parent, f"ft-{os.getpid()}-{time.monotonic_ns()}@%h"), env=env, log=log)


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server binary")
def test_every_message_arrives_once_through_crashes_and_outages(redis_url, make_app, tokens, tmp_path):
    """``redis_url`` only gates the test to services runs: it uses a Redis server of its own, so
    stopping it never touches the one other tests share."""
    own_redis = OwnRedis(tmp_path)
    own_redis.start()
    receiver = Receiver(failures=8)
    smtp_port = free_port()
    sink = start_sink(smtp_port, tmp_path / "mail")
    app = make_app("messaging", MESSAGING_DIRECTORY="memory", MESSAGING_SMTP_PORT=smtp_port,
                   MESSAGING_APP_RATE_LIMIT="100000/minute", RATELIMIT_ENABLED=False)
    tokens.install(app)
    from messaging.seed import seed

    seed(app)
    broker = Celery("ft", broker=own_redis.url)
    broker.conf.broker_connection_retry_on_startup = True
    hub = app.extensions["messaging"]

    def kick() -> None:
        with contextlib.suppress(Exception):  # Redis may be down on purpose; beat's relay finds the row
            broker.send_task("messaging.relay", retry=False)

    hub.kick = kick
    env = dict(os.environ, XSN_BROKER_URL=own_redis.url, XSN_MESSAGING_DATABASE_URL=app.config["DATABASE_URL"],
               XSN_VAR_DIR=app.config["VAR_DIR"], XSN_KEK=app.config["KEK"], XSN_MESSAGING_DIRECTORY="memory",
               XSN_MESSAGING_SMTP_PORT=str(smtp_port), XSN_MESSAGING_RELAY_INTERVAL="0.5",
               XSN_MESSAGING_SWEEP_INTERVAL="1", XSN_MESSAGING_STUCK_AFTER="4", XSN_MESSAGING_BATCH_SIZE="5",
               XSN_MESSAGING_WEBHOOK_RETRY_SCHEDULE="0,0.5,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
               XSN_MESSAGING_RETRY_SCHEDULE="0.5,1,1,1,1,1,1,1,1,1")
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    client = app.test_client()
    headers = {"Authorization": "Bearer " + tokens.token(scope="messaging:send", aud="xsn:messaging",
                                                          client_id="xsn-payment", lifetime=600)}
    assert client.post("/webhooks", json={"url": receiver.url, "event_types": ["message.completed"]},
                       headers=headers).status_code == 201
    variables = {"payment_code": "6101", "amount_yuan": "1.00", "receipt_number": "R"}
    sent: list[str] = []
    try:
        for n in range(MESSAGES):
            response = client.post("/messages", headers={**headers, "Idempotency-Key": f"ft-{n}"},
                                   json={"template": "payment_receipt", "variables": variables,
                                         "channels": ["email"], "recipients": [{"email": f"payer{n}@example.cn"}]})
            assert response.status_code == 202, response.get_json()
            sent.append(response.get_json()["message_id"])
            if n == 20:
                kill(worker)  # mid-run, whatever it holds
                worker = start_worker(env, log)
            if n == 40:
                own_redis.stop()  # every queued task is gone with it
                time.sleep(1.5)
                own_redis.start()
            time.sleep(0.05)
        def completed() -> int:
            with get_db(app).session() as session:
                return session.scalar(select(func.count()).where(Message.status == "completed"))

        with contextlib.suppress(AssertionError):  # the count and the worker's log below say what is missing
            wait_for(lambda: completed() == MESSAGES and len(receiver.acked) >= MESSAGES, 120,
                     "every message's delivery")
        done = completed()
    finally:
        kill(worker)
        own_redis.stop()
        sink.stop()
        receiver.served.stop()
    assert done == MESSAGES, f"{done} of {MESSAGES} completed; worker log:\n{log.read_text()[-3000:]}"
    payloads = [json.loads(body) for body in receiver.acked.values()]
    by_message: dict[str, int] = {}
    for payload in payloads:
        by_message[payload["data"]["message_id"]] = by_message.get(payload["data"]["message_id"], 0) + 1
    assert set(by_message) == set(sent)
    assert max(by_message.values()) == 1  # one webhook id per message, whatever was retried
    assert all(p["data"]["recipients"] == {"delivered": 1} for p in payloads)
    mails = read_mailbox(tmp_path / "mail")
    assert {m["X-XSN-Message-Id"] for m in mails} == set(sent)  # none lost (a crash may repeat a mail)
    assert receiver.requests > len(receiver.acked)  # the receiver did fail before it recovered
