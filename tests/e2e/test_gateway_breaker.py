"""The circuit breaker through the real gateway process (``python -m gateway.edge``) in front of
a real upstream process: a stub service that answers a burst of concurrent requests with one
503 problem document each, as a licences group commit that failed does.

A service that answers is reachable: the breaker stays closed. A service that is gone still
opens it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from tests.support.suite import TokenFactory, free_port, process, wait_ready

pytestmark = pytest.mark.e2e

BURST = 6  # requests of one group commit
FAILURES = 3  # the gateway's breaker threshold here: fewer than a burst
# The stub service: POST /verify waits until a burst of BURST requests is in, then tells each
# 503 verification_write_failed at once (keep-alive, a well-formed problem document).
STUB = f"""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

burst = threading.Barrier({BURST})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, mime):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, {{"status": "ok"}}, "application/json")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        burst.wait(10)
        self.answer(503, {{"type": "about:blank", "title": "The verification could not be recorded",
                           "status": 503, "code": "verification_write_failed"}}, "application/problem+json")


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
ROUTES = """prefix: /stub
upstream: stub
routes:
  - {path: /verify, methods: [POST], auth: public}
  - {path: /ok, methods: [GET], auth: public}
"""


@dataclass
class Processes:
    gateway: str
    stub: subprocess.Popen


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    stub_port, port = free_port(), free_port()
    stub_url, base = f"http://127.0.0.1:{stub_port}", f"http://127.0.0.1:{port}"
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "stub.yaml").write_text(ROUTES)
    issuer = f"{base}/identity"
    urls = {name: stub_url for name in ("identity", "licenses", "seal", "payment", "messaging", "stub")}
    urls["gateway"] = base
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSN_")}
    env.update(XSN_VAR_DIR=str(tmp_path / "var"), XSN_PUBLIC_BASE_URL=base, XSN_LOG_LEVEL="WARNING",
               XSN_SERVICE_URLS=json.dumps(urls), XSN_GATEWAY_ROUTES_DIR=str(tmp_path / "routes"),
               XSN_OAUTH_ISSUER=issuer,
               XSN_OAUTH_JWKS_URL=TokenFactory(issuer=issuer).write_jwks(tmp_path / "jwks.json"),
               XSN_GATEWAY_ADMIN_URL=stub_url, XSN_GATEWAY_AUDIT_SINK="memory",
               XSN_GATEWAY_BREAKER_FAILURES=str(FAILURES), XSN_GATEWAY_BREAKER_OPEN="30")
    with process([sys.executable, "-c", STUB, str(stub_port)], env=env, log=tmp_path / "stub.log") as stub, \
            process([sys.executable, "-m", "gateway.edge", "--port", str(port)], env=env,
                    log=tmp_path / "gateway.log") as gateway:
        wait_ready(f"{stub_url}/livez", proc=stub)
        wait_ready(f"{base}/readyz", proc=gateway)
        yield Processes(base, stub)


def _breaker(gateway: str) -> dict:
    return requests.get(f"{gateway}/readyz", timeout=5).json()["upstreams"]["stub"]


def test_a_burst_of_problem_answers_does_not_take_the_service_offline(processes):
    with ThreadPoolExecutor(BURST) as pool:
        answers = list(pool.map(lambda _: requests.post(f"{processes.gateway}/stub/verify", json={}, timeout=15),
                                range(BURST)))
    # Each client got the service's own answer, its code intact.
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(503, "verification_write_failed")] * BURST
    after = requests.get(f"{processes.gateway}/stub/ok", timeout=5)
    assert after.status_code == 200, after.text  # forwarded: not 503 upstream_circuit_open
    breaker = _breaker(processes.gateway)
    assert (breaker["state"], breaker["failures"]) == ("closed", 0)


def test_a_dead_service_still_opens_the_circuit(processes):
    assert requests.get(f"{processes.gateway}/stub/ok", timeout=5).status_code == 200
    os.killpg(processes.stub.pid, signal.SIGKILL)
    processes.stub.wait(5)
    statuses = [requests.get(f"{processes.gateway}/stub/ok", timeout=10).status_code for _ in range(FAILURES)]
    assert statuses == [502] * FAILURES
    refused = requests.get(f"{processes.gateway}/stub/ok", timeout=5)
    assert refused.status_code == 503 and refused.json()["code"] == "upstream_circuit_open"
    assert _breaker(processes.gateway)["state"] == "open"
