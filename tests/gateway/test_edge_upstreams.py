"""The edge and its upstreams (a real edge over TCP): a service it cannot reach (502, the circuit
opens), a service's own 503 answers (problem documents or HTML pages: the circuit stays closed),
an answer broken off, an upstream on a unix socket, bad socket settings refused at startup."""

from __future__ import annotations

import pytest
import requests

from tests.gateway.conftest import headers_of


def test_unreachable_upstream_is_502_and_the_circuit_opens(start_edge):
    edge = start_edge(GATEWAY_BREAKER_FAILURES=2, GATEWAY_RETRIES=0)
    token = edge.tokens.bearer(aud="xsn:payment")
    first = requests.get(f"{edge.url}/payment/x", headers=token)
    assert first.status_code == 502 and first.json()["code"] == "upstream_unavailable"
    assert requests.get(f"{edge.url}/payment/x", headers=token).status_code == 502
    opened = requests.get(f"{edge.url}/payment/x", headers=token)
    assert opened.status_code == 503 and opened.json()["code"] == "upstream_circuit_open"
    assert edge.records(opened.headers["X-Request-ID"])[0]["outcome"] == "error"
    ready = requests.get(f"{edge.url}/readyz").json()
    assert ready["upstreams"]["payment"]["state"] == "open"
    assert ready["upstreams"]["seal"]["state"] == "closed"


def test_a_burst_of_problem_answers_leaves_the_circuit_closed(start_edge):
    """The service answers 503 problems to concurrent requests: it is reachable, the answers are
    passed on as they are, and the next request is forwarded."""
    from concurrent.futures import ThreadPoolExecutor

    edge = start_edge(GATEWAY_BREAKER_FAILURES=2)
    token = edge.tokens.bearer(aud="xsn:seal")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{edge.url}/seal/problem/503", headers=token), range(6)))
    assert {(a.status_code, a.json()["code"]) for a in answers} == {(503, "database_busy")}
    assert requests.get(f"{edge.url}/seal/x", headers=token).status_code == 200
    seal = requests.get(f"{edge.url}/readyz").json()["upstreams"]["seal"]
    assert (seal["state"], seal["failures"]) == ("closed", 0)


def test_html_503_pages_of_a_public_route_leave_the_circuit_closed(start_edge, serve_app, tmp_path):
    """A service's own HTML 503 page (the console login while identity's IdP is down) on a public
    route: six GETs are each sent once and passed on, and cannot open the circuit for the service."""
    from flask import Flask

    sent: list[str] = []
    app = Flask("console")

    @app.route("/<path:path>")
    def page(path: str):
        sent.append(path)
        return "<html><body>Sign-in is unavailable</body></html>", 503, {"Content-Type": "text/html"}

    path = str(tmp_path / "identity.sock")
    serve_app(app, unix_socket=path)
    edge = start_edge(GATEWAY_BREAKER_FAILURES=2, GATEWAY_RETRIES=2, GATEWAY_UPSTREAM_SOCKETS={"identity": path})
    answers = [requests.get(f"{edge.url}/identity/.well-known/openid-configuration") for _ in range(6)]
    assert [a.status_code for a in answers] == [503] * 6
    assert "Sign-in is unavailable" in answers[0].text
    assert sent.count(".well-known/openid-configuration") == 6  # besides the edge's /livez probes
    identity = requests.get(f"{edge.url}/readyz").json()["upstreams"]["identity"]
    assert (identity["state"], identity["failures"]) == ("closed", 0)


def test_a_body_the_service_breaks_off_counts_as_a_failure(start_edge):
    edge = start_edge(GATEWAY_BREAKER_FAILURES=1)
    token = edge.tokens.bearer(aud="xsn:seal")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{edge.url}/seal/cut", headers=token).content  # noqa: B018 - read the body
    opened = requests.get(f"{edge.url}/seal/x", headers=token)
    assert opened.status_code == 503 and opened.json()["code"] == "upstream_circuit_open"


def test_an_upstream_on_a_unix_socket(start_edge, serve_app, tmp_path):
    """``GATEWAY_UPSTREAM_SOCKETS``: the edge reaches the service at its socket (nothing listens
    at its URL's port), and tells it the URL's ``host:port`` as ``Host``."""
    from tests.gateway.conftest import echo_app

    path = str(tmp_path / "payment.sock")
    serve_app(echo_app(), unix_socket=path)
    edge = start_edge(GATEWAY_UPSTREAM_SOCKETS={"payment": path})
    response = requests.get(f"{edge.url}/payment/x", headers=edge.tokens.bearer(aud="xsn:payment"))
    assert response.status_code == 200
    assert headers_of(response.json())["host"] == [edge.gateway.upstreams["payment"].pool.host_header]
    assert requests.get(f"{edge.url}/licenses/x", headers=edge.tokens.bearer(aud="xsn:licenses")).status_code == 502


@pytest.mark.parametrize(("sockets", "message"), [
    ({"paymnet": "/run/xsn/payment.sock"}, "unknown upstreams: paymnet"),
    ({"payment": "run/payment.sock"}, "must be absolute: payment='run/payment.sock'"),
    ("/run/xsn/payment.sock", "must map upstream names"),
], ids=["unknown-upstream", "relative-path", "not-a-mapping"])
def test_bad_upstream_sockets_are_refused_at_startup(start_edge, sockets, message):
    with pytest.raises(RuntimeError, match=message):
        start_edge(GATEWAY_UPSTREAM_SOCKETS=sockets)


def test_a_header_limit_above_what_the_services_gunicorn_takes_is_refused_at_startup(start_edge):
    # A request target between the two limits would pass the edge and get gunicorn's HTML 414.
    with pytest.raises(RuntimeError, match="GATEWAY_MAX_HEADER_BYTES may be at most 8190"):
        start_edge(GATEWAY_MAX_HEADER_BYTES=8191)
