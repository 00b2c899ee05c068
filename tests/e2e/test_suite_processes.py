"""The real processes: six services under gunicorn answer directly and through the gateway."""

from __future__ import annotations

import json
import time

import pytest
import requests

from common.config import SERVICES
from tests.support.suite import client_token

pytestmark = pytest.mark.e2e
ROUTED = [s for s in SERVICES if s != "gateway"]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics", "/openapi.json", "/info"])
def test_endpoints_answer_directly(suite, service, path):
    response = requests.get(suite.base_url(service) + path, timeout=5)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("service", ROUTED)
@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics", "/openapi.json", "/info"])
def test_endpoints_answer_through_the_gateway(suite, service, path):
    response = requests.get(f"{suite.base_url('gateway')}/{service}{path}", timeout=5)
    assert response.status_code == 200, response.text


def test_metrics_aggregate_gunicorn_workers(suite):
    url = suite.base_url("seal")
    for _ in range(6):
        requests.get(url + "/livez", timeout=5)
    text = requests.get(url + "/metrics", timeout=5).text
    line = next(line for line in text.splitlines()
                if line.startswith("xsn_http_requests_total") and 'route="/livez"' in line)
    assert float(line.rsplit(" ", 1)[1]) >= 6


def test_errors_are_problems_through_the_gateway(suite):
    gateway = suite.base_url("gateway")
    # A path no route lists needs a token at the gateway (issue 10): without one, 401 there;
    # with one, the service's own 404, both problem documents.
    anonymous = requests.get(f"{gateway}/licenses/no/such/thing", timeout=5)
    assert anonymous.status_code == 401 and anonymous.headers["Content-Type"] == "application/problem+json"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    token = client_token(suite, "xsn-admin")["access_token"]
    missing = requests.get(f"{gateway}/licenses/no/such/thing", headers={"Authorization": f"Bearer {token}"},
                           timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    wrong = requests.put(f"{gateway}/payment/livez", timeout=5)
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    big = requests.post(f"{gateway}/messaging/info", data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert big.status_code == 413 and big.json()["code"] == "payload_too_large"


def test_timers_do_not_fill_the_log_a_person_reads(suite):
    """The edge probes each service's /livez every 5 s and polls identity's revocation feed every
    second; the embedded beat sends the hub's relay every second: ~220 INFO lines a minute with
    nothing happening, and the start-up summary scrolled away. Those are DEBUG or WARNING now;
    a person's request is still an INFO line."""
    identity = suite.base_url("identity")
    marker = requests.get(identity + "/info", headers={"X-Request-ID": "log-marker-request-1"}, timeout=5)
    assert marker.status_code == 200
    metrics = requests.get(identity + "/metrics", timeout=5).text
    polled = [line for line in metrics.splitlines() if line.startswith("xsn_http_requests_total{")
              and ('route="/oauth/revocations"' in line or 'route="/livez"' in line)]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in polled) >= 2  # the timers did run
    log_dir = suite.log_dir
    deadline = time.monotonic() + 10
    while b"log-marker-request-1" not in (log_dir / "identity.log").read_bytes():
        assert time.monotonic() < deadline, "the request's access line never came"
        time.sleep(0.1)
    access = [json.loads(line) for line in (log_dir / "identity.log").read_bytes().splitlines()
              if line.startswith(b"{") and b'"event":"request"' in line]
    assert [line["path"] for line in access if line["request_id"] == "log-marker-request-1"] == ["/info"]
    assert not [line for line in access if line["path"] in ("/livez", "/readyz", "/oauth/revocations")]
    assert b"Sending due task" not in (log_dir / "worker.log").read_bytes()
