"""Benchmark the message hub end to end: ``python -m bench.messaging``.

Starts, on free ports and a temporary var dir: a Redis server of its own (the Celery broker),
the messaging service under gunicorn (2 sync workers, trusting a local test JWKS), a Celery
worker (2 processes, beat embedded for the relay), the SMTP sink process, and a webhook
receiver in this process. Then, in one run:

* the raw Celery rate: ``--noops`` no-op tasks are queued while the worker is paused
  (stopped), the worker is started, and the rate is measured from the first task taken to
  the queue being empty;
* end to end: client threads send bulk messages (``--recipients`` raw e-mail addresses each,
  template ``payment_receipt`` of app ``xsn-payment``) through ``POST /messages``; a
  *message* here is one recipient's mail, delivered when the sink holds it; a request's
  latency runs from its POST to the receiver getting its signed ``message.completed`` event
  (which is sent when every one of its mails is delivered).

The last line is ``RESULT {json}`` with ``e2e_ratio`` (mails delivered per second ÷ raw
Celery no-op tasks per second), ``lost`` (mails not in the sink at the end) and ``p99_ms``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
import requests
from celery import Celery
from werkzeug.wrappers import Request, Response

from bench.result import print_result
from messaging.smtp_sink import read_mailbox
from tests.support.suite import Served, TokenFactory, beat_worker_argv, free_port, spawn, stop_group, wait_for

KEK = "00112233445566778899aabbccddeeff"
ROOT = Path(__file__).resolve().parents[1]


class Receiver:
    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per event would cost the run
        self.arrived: dict[str, float] = {}  # message id -> when its completion event came
        self.lock = threading.Lock()
        self.served = Served(self.app)
        self.url = f"{self.served.url}/hook"

    def app(self, environ, start_response):
        body = json.loads(Request(environ).get_data())
        with self.lock:
            self.arrived.setdefault(body["data"]["message_id"], time.perf_counter())
        return Response(status=204)(environ, start_response)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        stop_group(proc)


def raw_rate(broker: Celery, queue: redis.Redis, env: dict[str, str], var: Path, count: int) -> tuple[float, object]:
    """Queue ``count`` no-ops with no worker running, start one, time the drain. Returns the rate and the worker."""
    for _ in range(count):
        broker.send_task("messaging.noop")
    worker = spawn(beat_worker_argv(var, f"bench-{os.getpid()}@%h"), env=env, log=var / "worker.log")
    wait_for(lambda: queue.llen("celery") < count, 60, "the worker to start", interval=0.02)
    start, left = time.perf_counter(), queue.llen("celery")
    wait_for(lambda: queue.llen("celery") == 0, 120, "the no-ops to drain", interval=0.02)
    return left / (time.perf_counter() - start), worker  # the ones still queued at the start were timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="POST /messages requests")
    parser.add_argument("--recipients", type=int, default=50, help="mails per request")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--noops", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=100, help="deliveries per worker task")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is needed (apt-get install redis-server)")

    var = Path(tempfile.mkdtemp(prefix="xsn-bench-messaging-"))
    tokens = TokenFactory()
    redis_port, smtp_port, api_port = free_port(), free_port(), free_port()
    broker_url = f"redis://127.0.0.1:{redis_port}/0"
    receiver = Receiver()
    env = dict(os.environ, XSN_VAR_DIR=str(var), XSN_KEK=KEK, XSN_OAUTH_JWKS_URL=tokens.write_jwks(var / "jwks.json"),
               XSN_OAUTH_ISSUER=tokens.issuer, XSN_LOG_LEVEL="WARNING", XSN_BROKER_URL=broker_url,
               XSN_MESSAGING_DIRECTORY="memory", XSN_MESSAGING_SMTP_PORT=str(smtp_port),
               XSN_RATELIMIT_ENABLED="false", XSN_MESSAGING_BATCH_SIZE=str(args.batch_size),
               XSN_MESSAGING_RELAY_INTERVAL="0.2")
    env.pop("XSN_MESSAGING_DATABASE_URL", None)
    procs: list[subprocess.Popen] = []
    worker = None
    try:
        procs.append(spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", str(var)], env=env, log=var / "redis.log"))
        subprocess.run([sys.executable, "-m", "common.ops.cli", "migrate", "messaging"], env=env, check=True,
                       capture_output=True, cwd=ROOT)
        seed = "import messaging, messaging.seed; app = messaging.create_app()\nmessaging.seed.seed(app)"
        subprocess.run([sys.executable, "-c", seed], env=env, check=True, capture_output=True, cwd=ROOT)
        procs.append(spawn([sys.executable, "-m", "messaging.smtp_sink", "--port", str(smtp_port),
                            "--dir", str(var / "mail")], env=env, log=var / "sink.log"))
        procs.append(spawn([sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{api_port}",
                            "--log-level", "warning", "--no-control-socket", "messaging:create_app()"],
                           env=env, log=var / "api.log"))
        api = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: _ok(f"{api}/livez"), 30, "the API", interval=0.02)
        queue = redis.Redis.from_url(broker_url)
        broker = Celery("bench", broker=broker_url)
        rate, worker = raw_rate(broker, queue, env, var, args.noops)
        print(f"raw Celery no-op tasks/s (2 worker processes): {rate:,.0f}")

        headers = {"Authorization": "Bearer " + tokens.token(scope="messaging:send", aud="xsn:messaging",
                                                              client_id="xsn-payment", lifetime=3600)}
        requests.post(f"{api}/webhooks", json={"url": receiver.url, "event_types": ["message.completed"]},
                      headers=headers, timeout=10).raise_for_status()
        figures = _run_e2e(api, headers, receiver, args)
        wait_for(lambda: len(receiver.arrived) >= len(figures["sent"]), 300, "every completion event", interval=0.02)
        end = max(receiver.arrived.values())
        # A group of one message's recipients is one SMTP transaction: count envelope recipients.
        mails = sum(len(str(m["X-Envelope-To"]).split(", ")) for m in read_mailbox(var / "mail"))
    finally:
        stop(worker)
        for proc in reversed(procs):
            stop(proc)
        receiver.served.stop()
    sent = figures["sent"]
    total = args.requests * args.recipients
    e2e = total / (end - figures["start"])
    latencies = sorted((receiver.arrived[m] - t0) * 1000 for m, t0 in sent.items())
    p50, p99 = statistics.median(latencies), latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"end-to-end mails delivered/s: {e2e:,.0f} ({args.requests} requests x {args.recipients} recipients, "
          f"{args.threads} client threads; API accepted them in {figures['accept_s']:.1f} s)")
    print(f"ratio end-to-end / raw Celery: {e2e / rate:.2f}")
    print(f"latency POST -> signed completion event: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms")
    print(f"mails in the sink: {mails} of {total}")
    if mails >= total:
        shutil.rmtree(var, ignore_errors=True)
    else:
        print(f"kept {var} to look at")
    print_result({"raw_celery_per_s": round(rate), "e2e_per_s": round(e2e), "e2e_ratio": round(e2e / rate, 3),
                  "lost": total - min(mails, total), "duplicates": max(0, mails - total), "p50_ms": round(p50),
                  "p99_ms": round(p99), "recipients_per_request": args.recipients, "requests": args.requests})


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _run_e2e(api: str, headers: dict[str, str], receiver: Receiver, args) -> dict:
    sent: dict[str, float] = {}
    lock = threading.Lock()
    numbers = iter(range(args.requests))
    variables = {"payment_code": "61010020261234", "amount_yuan": "120.00", "receipt_number": "R0001"}

    def client() -> None:
        http = requests.Session()
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            body = {"template": "payment_receipt", "variables": variables, "channels": ["email"],
                    "recipients": [{"email": f"payer{n}-{i}@example.cn"} for i in range(args.recipients)]}
            t0 = time.perf_counter()
            response = http.post(f"{api}/messages", json=body, timeout=60,
                                 headers={**headers, "Idempotency-Key": f"bench-{n}"})
            response.raise_for_status()
            with lock:
                sent[response.json()["message_id"]] = t0

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"sent": sent, "start": start, "accept_s": time.perf_counter() - start}


if __name__ == "__main__":
    main()
