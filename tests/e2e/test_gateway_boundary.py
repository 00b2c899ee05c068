"""The gateway in front of the real suite: the four findings of issue 10 and the trusted boundary.

Each of the first three failed against the Flask forwarder the edge replaced (the fourth
finding, throughput, is ``python -m bench.gateway``).
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

import pytest
import requests

from identity.seed import DEMO_PEOPLE
from tests.support.half_open import half_open_heads
from tests.support.suite import client_token, wait_for

pytestmark = pytest.mark.e2e


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connect from another loopback address (all of 127/8 is loopback on Linux): the gateway
    sees another client, and this test's limits do not spend the shared suite's 127.0.0.1."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def _browser_from(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", _FromAddress(address))
    return session


def _csrf(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=10)
    assert page.status_code == 200, page.text[:300]
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_idle_half_open_connections_do_not_take_the_suite_offline(suite):
    """Finding 1: two connections that never finished their heads stalled every request."""
    gateway = urlsplit(suite.base_url("gateway"))
    with half_open_heads(gateway.hostname, gateway.port, gateway.netloc, "/identity/livez", 20):
        started = time.monotonic()
        response = requests.get(f"{suite.base_url('gateway')}/identity/livez", timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0


def test_forged_forwarded_for_does_not_defeat_the_login_limit(suite):
    """Finding 3: each wrong login with a new forged X-Forwarded-For counted for a new client."""
    browser = _browser_from("127.0.0.2")
    login = f"{suite.base_url('gateway')}/identity/login"
    csrf = _csrf(browser, login)
    statuses = []
    for attempt in range(30):
        response = browser.post(login, timeout=10, headers={"X-Forwarded-For": f"198.51.100.{attempt}"},
                                data={"csrf_token": csrf, "login": f"nobody-{attempt}@example.invalid",
                                      "password": "wrong-password"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            # identity's own limit (its page, not the gateway's problem document): it saw one client.
            assert response.headers["Content-Type"].startswith("text/html")
            break
    assert 429 in statuses, statuses
    assert statuses.index(429) <= 21
    # Identity limited the real client, not everyone: another address still gets an answer.
    other = _browser_from("127.0.0.3")
    answer = other.post(login, timeout=10, data={"csrf_token": _csrf(other, login), "login": "nobody@example.invalid",
                                                  "password": "wrong-password"})
    assert answer.status_code == 401


def test_forged_host_cannot_steer_the_reset_link(suite):
    """Finding 4: the reset link was built from the request's Host."""
    gateway = suite.base_url("gateway")
    person = DEMO_PEOPLE[1]
    browser = _browser_from("127.0.0.4")  # identity allows few reset requests per address
    csrf = _csrf(browser, f"{gateway}/identity/password/forgot")
    form = {"csrf_token": csrf, "id_number": person["id_number"], "mobile": person["mobile"]}
    forged = browser.post(f"{gateway}/identity/password/forgot", data=form, headers={"Host": "evil.example"},
                          timeout=10, allow_redirects=False)
    assert forged.status_code == 421
    assert forged.json()["code"] == "unknown_host"
    # The right Host with a forged X-Forwarded-Host: the gateway sets its own.
    sent = browser.post(f"{gateway}/identity/password/forgot", data=form, timeout=10, allow_redirects=False,
                        headers={"X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example"})
    assert sent.status_code in (302, 303), sent.text[:300]
    # The link reaches the person as an SMS through the message hub: read what the carrier got.
    simulator = f"http://127.0.0.1:{suite.ports['sms-simulator']}/sim/messages"
    texts = wait_for(lambda: requests.get(simulator, params={"phone": person["mobile"]}, timeout=10).json(),
                     60, "the reset SMS at the carrier simulator")
    assert len(texts) == 1, texts  # the forged-Host request sent nothing
    assert texts[0]["params"]["link"].startswith(f"{gateway}/identity/password/reset/"), texts
    assert "evil.example" not in json.dumps(texts)


def test_tokens_scopes_and_caller_reach_the_service(suite):
    gateway = suite.base_url("gateway")
    missing = requests.get(f"{gateway}/identity/api/v1/people", timeout=10)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    token = client_token(suite, "xsn-admin")["access_token"]
    whoami = requests.get(f"{gateway}/identity/auth/whoami", headers={"Authorization": f"Bearer {token}",
                                                                       "X-XSN-Subject": "forged"}, timeout=10)
    assert whoami.status_code == 200 and whoami.json()["client_id"] == "xsn-admin"
    # A token for identity is not a token for seal.
    wrong = requests.get(f"{gateway}/seal/seals", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert wrong.status_code == 401


def test_revoked_token_is_refused_within_five_seconds(suite):
    """Contract 2: identity's feed reaches the gateway by polling (embedded)."""
    gateway = suite.base_url("gateway")
    secret = json.loads((suite.var_dir / "clients.json").read_text())["xsn-admin"]["client_secret"]
    token = client_token(suite, "xsn-admin")["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{gateway}/identity/auth/whoami", headers=headers, timeout=10).status_code == 200
    revoked = requests.post(f"{gateway}/identity/oauth/revoke", auth=("xsn-admin", secret), timeout=10,
                            data={"token": token, "token_type_hint": "access_token"})
    assert revoked.status_code == 200
    started = time.monotonic()
    while time.monotonic() - started < 5:
        answer = requests.get(f"{gateway}/identity/auth/whoami", headers=headers, timeout=10)
        if answer.status_code == 401:
            assert answer.json()["code"] == "token_revoked"
            return
        time.sleep(0.2)
    pytest.fail("the gateway still accepted a revoked token after 5 s")


def test_a_long_query_reaches_the_service_and_a_longer_one_gets_the_edges_problem(suite):
    """Every request line the edge accepts, the service's gunicorn accepts too: a 6,000-byte line
    once got gunicorn's own HTML "414 URI Too Long" through the gateway (its default limit 4094).
    Beyond the edge's limit the edge refuses it itself, as a problem."""
    gateway = suite.base_url("gateway")
    answer = requests.get(f"{gateway}/seal/info", params={"pad": "x" * 6000}, timeout=10)
    assert answer.status_code == 200, answer.text[:200]
    refused = requests.get(f"{gateway}/seal/info", params={"pad": "x" * 9000}, timeout=10)
    assert (refused.status_code, refused.headers["Content-Type"]) == (414, "application/problem+json")
    assert refused.json()["code"] == "uri_too_long"


def test_pages_keep_their_security_headers_through_the_gateway(suite):
    """What the services set on pages and answers (common.web.page_headers) reaches the browser
    through the edge; the Swagger page has its own policy."""
    from common.web.page_headers import DOCS_POLICY, PAGE_POLICY

    gateway = suite.base_url("gateway")
    for path in ("/identity/login", "/licenses/check", "/payment/cashier"):
        page = requests.get(gateway + path, headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html"), path
        assert (page.headers["Content-Security-Policy"], page.headers["X-Frame-Options"],
                page.headers["X-Content-Type-Options"], page.headers["Referrer-Policy"]) == (
            PAGE_POLICY, "DENY", "nosniff", "same-origin"), path
    docs = requests.get(f"{gateway}/seal/docs", timeout=10)
    assert docs.headers["Content-Security-Policy"] == DOCS_POLICY
    answer = requests.get(f"{gateway}/seal/livez", timeout=10)
    assert answer.headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" not in answer.headers


@pytest.mark.parametrize(("method", "path", "form"), [
    ("GET", "/payment/cashier/receipt?code=AB%00CD", None),  # a page reading request.args itself
    ("POST", "/identity/login", {"username": "zhang\x00san", "password": "x"}),  # a form, before its CSRF check
])
def test_a_nul_in_a_page_query_or_form_is_refused_through_the_gateway(suite, method, path, form):
    """The edge passes ``%00`` in a query and a NUL in a form body on as sent: the service refuses
    them before its view (422), never PostgreSQL's 500."""
    answer = requests.request(method, suite.base_url("gateway") + path, data=form, timeout=10,
                              allow_redirects=False)
    assert answer.status_code == 422, answer.text[:300]
