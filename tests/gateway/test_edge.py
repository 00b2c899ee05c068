"""Through the door: a real edge on a port, a real upstream behind it, requests over TCP."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from tests.gateway.conftest import headers_of, parse_raw


@pytest.fixture
def edge(start_edge):
    return start_edge()


def _b64(value: dict) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _host(edge) -> str:
    return f"127.0.0.1:{edge.port}"


def test_forwards_with_boundary_headers_and_caller(edge):
    response = requests.get(f"{edge.url}/seal/things/1?x=1", headers={
        **edge.tokens.bearer(aud="xsn:seal", scope="seal:sign", client_id="c-1", sub="p-1", acr="urn:xsn:acr:L3"),
        "X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9", "X-Forwarded-Host": "evil.example",
        "X-XSN-Subject": "someone-else", "X-XSN-Scopes": "seal:admin", "X-Request-ID": "trace-0001-abcd"})
    assert response.status_code == 200
    body = response.json()
    seen = headers_of(body)
    assert body["path"] == "/things/1?x=1"
    assert seen["x-forwarded-for"] == ["127.0.0.1"]  # the connection, not the client's claim
    assert "forwarded" not in seen
    assert seen["x-forwarded-host"] == [_host(edge)]
    assert seen["x-forwarded-prefix"] == ["/seal"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-xsn-subject"] == ["p-1"] and seen["x-xsn-scopes"] == ["seal:sign"]
    assert seen["x-xsn-client-id"] == ["c-1"] and seen["x-xsn-acr"] == ["urn:xsn:acr:L3"]
    assert seen["x-request-id"] == ["trace-0001-abcd"]
    assert response.headers["X-Request-ID"] == "trace-0001-abcd"
    record = edge.records("trace-0001-abcd")[0]
    assert record["client_id"] == "c-1" and record["subject"] == "p-1" and record["acr"] == "urn:xsn:acr:L3"
    assert record["route"] == "/seal/**" and record["path"] == "/seal/things/1" and record["outcome"] == "ok"
    assert record["upstream"] == "seal" and record["status"] == 200 and record["bytes_out"] > 0
    assert "Bearer" not in json.dumps(record) and "x=1" not in json.dumps(record)


def test_public_route_needs_no_token_and_sets_no_caller(edge):
    response = requests.get(f"{edge.url}/seal/ca/certificate", headers={"X-XSN-Client-Id": "forged"})
    assert response.status_code == 200
    assert not [h for h in headers_of(response.json()) if h.startswith("x-xsn-")]


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1", "127.0.0.1:1", "localhost.evil.example"])
def test_unconfigured_host_is_refused_and_not_forwarded(edge, host):
    before = len(edge.sink.records)
    response = requests.get(f"{edge.url}/seal/livez", headers={"Host": host})
    assert response.status_code == 421
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "unknown_host"
    record = edge.records(response.headers["X-Request-ID"])[0]
    assert record["outcome"] == "rejected" and record["reason"] == "unknown_host"
    assert len(edge.sink.records) == before + 1


def test_loopback_names_of_the_embedded_run_are_served(edge):
    assert requests.get(f"http://localhost:{edge.port}/seal/livez").status_code == 200


def test_missing_token_is_rfc6750(edge):
    response = requests.get(f"{edge.url}/seal/seals")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="xsn"'
    assert response.json()["code"] == "token_missing"


@pytest.mark.parametrize("case", ["expired", "wrong_audience", "wrong_issuer", "forged_key", "alg_none", "not_at_jwt",
                                  "garbage"])
def test_bad_tokens_are_refused(edge, case):
    from joserfc.jwk import ECKey

    tokens = edge.tokens
    forged_kid = {"kid": "test-key-1"}
    token = {
        "expired": lambda: tokens.token(aud="xsn:seal", lifetime=-120),
        "wrong_audience": lambda: tokens.token(aud="xsn:payment"),
        "wrong_issuer": lambda: tokens.token(aud="xsn:seal", iss="http://evil.example/identity"),
        "forged_key": lambda: tokens.token(aud="xsn:seal", key=ECKey.generate_key("P-256", parameters=forged_kid)),
        "alg_none": lambda: _b64({"alg": "none", "typ": "at+jwt", "kid": "test-key-1"}) + "."
        + tokens.token(aud="xsn:seal").split(".")[1] + ".",
        "not_at_jwt": lambda: tokens.token(aud="xsn:seal", header={"typ": "JWT"}),
        "garbage": lambda: "not.a.token",
    }[case]()
    response = requests.get(f"{edge.url}/seal/seals", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json()["status"] == 401
    record = edge.records(response.headers["X-Request-ID"])[0]
    assert record["outcome"] == "denied"


def test_missing_scope_is_403(edge):
    response = requests.post(f"{edge.url}/seal/seals/s-1/sign", json={},
                             headers=edge.tokens.bearer(aud="xsn:seal", scope="seal:read"))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert 'scope="seal:sign"' in response.headers["WWW-Authenticate"]


def test_a_route_resolved_before_still_checks_every_request(edge):
    """The (path, method) -> route memo skips only the path and route lookup: the token, its
    scopes, the method, the host and the body size are checked on every request."""
    url = f"{edge.url}/seal/seals/s-1/sign"
    good = edge.tokens.bearer(aud="xsn:seal", scope="seal:sign")
    assert requests.post(url, json={}, headers=good).status_code == 200
    assert (edge.gateway._resolved[("/seal/seals/s-1/sign", "POST")].route.scopes) == ("seal:sign",)
    assert requests.post(url, json={}).json()["code"] == "token_missing"
    reader = edge.tokens.bearer(aud="xsn:seal", scope="seal:read")
    assert requests.post(url, json={}, headers=reader).status_code == 403
    elsewhere = edge.tokens.bearer(aud="xsn:payment", scope="seal:sign")
    assert requests.post(url, json={}, headers=elsewhere).status_code == 401
    assert requests.post(url, json={}, headers={**good, "Host": "evil.example"}).status_code == 421
    assert requests.post(url, data=b"x" * (4 * 1024 * 1024 + 1), headers=good).status_code == 413
    assert requests.put(url, json={}, headers=good).status_code == 405
    assert requests.post(url, json={}, headers=good).status_code == 200


def test_two_authorization_headers_are_refused(edge):
    token = edge.tokens.token(aud="xsn:seal")
    raw = (f"GET /seal/seals HTTP/1.1\r\nHost: {_host(edge)}\r\nAuthorization: Bearer {token}\r\n"
           f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n").encode()
    status, headers, body = parse_raw(edge.raw(raw))
    assert status == 400 and json.loads(body)["code"] == "multiple_authorization"


def test_revoked_token_and_session_are_refused(edge):
    token = edge.tokens.token(aud="xsn:seal", jti="jti-revoked-1", sid="sess-1")
    other = edge.tokens.token(aud="xsn:seal", sid="sess-2")
    assert requests.get(f"{edge.url}/seal/x", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    edge.call(edge.gateway.tokens.revocations.add, {"jti": "jti-revoked-1", "exp": time.time() + 300}, "token")
    response = requests.get(f"{edge.url}/seal/x", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.json()["code"] == "token_revoked"
    assert requests.get(f"{edge.url}/seal/x", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    edge.call(edge.gateway.tokens.revocations.add, {"sid": "sess-2", "revoked_at": time.time()}, "session")
    assert requests.get(f"{edge.url}/seal/x", headers={"Authorization": f"Bearer {other}"}).status_code == 401


@pytest.mark.parametrize("path", ["/seal/../identity/api/v1/people", "/seal/%2e%2e/identity/x", "/seal/%2E%2E/identity",
                                  "/seal/..%2fidentity/x", "/seal/x%2f..%2f..%2fidentity", "/seal/%252e%252e/identity",
                                  "/seal/./livez", "/seal//livez", "/seal/a%5c..%5cidentity", "/seal/%69dentity",
                                  "/seal/%00", "/seal/%zz"])
def test_traversal_and_odd_paths_are_refused_never_forwarded(edge, path):
    raw = f"GET {path} HTTP/1.1\r\nHost: {_host(edge)}\r\nConnection: close\r\n\r\n".encode()
    status, headers, body = parse_raw(edge.raw(raw))
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] in ("path_traversal", "bad_path")
    assert edge.records(headers["x-request-id"])[0]["outcome"] == "rejected"


def test_unknown_prefix_and_method(edge):
    response = requests.get(f"{edge.url}/nowhere/x")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    raw = f"TRACE /seal/livez HTTP/1.1\r\nHost: {_host(edge)}\r\nConnection: close\r\n\r\n".encode()
    status, headers, _ = parse_raw(edge.raw(raw))
    assert status == 405 and "GET" in headers["allow"]


@pytest.mark.parametrize("raw_head", [
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "GET /seal/livez HTTP/1.1\r\nHost: {host}\r\nX-Bad: a\rb\r\n\r\n",
    "GET /seal/livez HTTP/1.1\r\nHost: {host}\r\nHost: {host}\r\n\r\n",
])
def test_smuggling_shapes_are_400_and_never_forwarded(edge, raw_head):
    before = [r for r in edge.sink.records if r["status"] == 200]
    status, headers, body = parse_raw(edge.raw(raw_head.format(host=_host(edge)).encode()))
    assert status == 400, body
    assert headers["content-type"] == "application/problem+json"
    assert headers.get("connection") == "close"
    time.sleep(0.05)
    assert [r for r in edge.sink.records if r["status"] == 200] == before  # nothing reached the upstream
    assert any(r["status"] == 400 for r in edge.sink.records)


def test_oversized_head_is_431(edge):
    raw = f"GET /seal/livez HTTP/1.1\r\nHost: {_host(edge)}\r\nX-Big: {'a' * 10000}\r\n\r\n".encode()
    status, _, body = parse_raw(edge.raw(raw))
    assert status == 431 and json.loads(body)["code"] == "headers_too_large"


def test_oversized_body_is_413_before_reading(edge):
    response = requests.post(f"{edge.url}/seal/verify", data=b"x" * (4 * 1024 * 1024 + 1))
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


@pytest.fixture
def edge_without_payment_routes(start_edge, tmp_path):
    """payment without a route file: only the default body limit and "any token" apply."""
    import shutil

    from gateway.edge.routing import ROUTES_DIR

    routes = tmp_path / "routes"
    shutil.copytree(ROUTES_DIR, routes)
    (routes / "payment.yaml").unlink()
    return start_edge(GATEWAY_MAX_BODY_BYTES=1000, GATEWAY_ROUTES_DIR=str(routes))


def _chunks():
    for _ in range(10):
        yield b"y" * 500


def test_chunked_body_over_the_limit_is_413(edge_without_payment_routes):
    edge = edge_without_payment_routes
    token = edge.tokens.bearer(aud="xsn:payment")
    response = requests.post(f"{edge.url}/payment/notices", data=_chunks(), headers=token)
    assert response.status_code == 413
    assert edge.records(response.headers["X-Request-ID"])[0]["reason"] == "payload_too_large"


def test_declared_oversized_body_is_413_before_any_token_check(edge_without_payment_routes):
    # A Content-Length over the limit is refused from the head alone, as nginx does: the client
    # learns nothing about the route's token rules and nothing of the body is read.
    edge = edge_without_payment_routes
    response = requests.post(f"{edge.url}/payment/notices", data=b"y" * 5000)
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_chunked_body_of_an_unauthorised_request_is_not_read(edge_without_payment_routes):
    # A chunked body's size is known only by reading it; the gateway reads bodies only of
    # requests it will forward, so a request without a token is refused 401 first.
    edge = edge_without_payment_routes
    response = requests.post(f"{edge.url}/payment/notices", data=_chunks())
    assert response.status_code == 401
    record = edge.records(response.headers["X-Request-ID"])[0]
    assert record["bytes_in"] == 0 and record["upstream"] == "payment"


def test_body_is_read_whole_and_forwarded(edge):
    response = requests.post(f"{edge.url}/seal/verify", data=b"z" * 300_000)
    assert response.status_code == 200 and response.json()["body_length"] == 300_000
    assert edge.records(response.headers["X-Request-ID"])[0]["bytes_in"] == 300_000


def test_trickling_head_gets_408(start_edge):
    edge = start_edge(GATEWAY_HEADER_TIMEOUT=0.5)
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(f"GET /seal/livez HTTP/1.1\r\nHost: {_host(edge)}\r\nX-Slow: ".encode())
        started = time.monotonic()
        answer = sock.recv(65536)
        assert time.monotonic() - started < 3
    status, headers, body = parse_raw(answer)
    assert status == 408 and json.loads(body)["code"] == "request_timeout"
    assert any(r["reason"] == "request_timeout" for r in edge.records())


def test_trickling_body_gets_408(start_edge):
    edge = start_edge(GATEWAY_BODY_TIMEOUT=0.5)
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(f"POST /seal/verify HTTP/1.1\r\nHost: {_host(edge)}\r\nContent-Length: 100\r\n\r\nabc".encode())
        status, _, body = parse_raw(sock.recv(65536))
    assert status == 408 and json.loads(body)["code"] == "request_timeout"


def test_idle_half_open_connections_do_not_block_others(edge):
    """Finding 1: two connections that never finish their heads took the old gateway offline."""
    idle = []
    try:
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", edge.port), timeout=5)
            sock.sendall(f"GET /seal/livez HTTP/1.1\r\nHost: {_host(edge)}\r\nX-Partial: ".encode())
            idle.append(sock)
        started = time.monotonic()
        response = requests.get(f"{edge.url}/seal/livez", timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
    finally:
        for sock in idle:
            sock.close()


def test_too_many_connections_get_503(start_edge):
    edge = start_edge(GATEWAY_MAX_CONNECTIONS=3)
    held = [socket.create_connection(("127.0.0.1", edge.port), timeout=5) for _ in range(3)]
    try:
        status, _, body = parse_raw(edge.raw(b""))
        assert status == 503 and json.loads(body)["code"] == "overloaded"
    finally:
        for sock in held:
            sock.close()


def test_rate_limit_429_with_headers(start_edge):
    edge = start_edge(GATEWAY_RATE_LIMITS={"default": {"rate": 0.01, "burst": 3}})
    headers = edge.tokens.bearer(aud="xsn:seal", client_id="greedy")
    answers = [requests.get(f"{edge.url}/seal/x", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["RateLimit-Limit"] == "3" and answers[0].headers["RateLimit-Remaining"] == "2"
    limited = answers[3]
    assert limited.json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert edge.records(limited.headers["X-Request-ID"])[0]["outcome"] == "denied"
    # Another client has its own bucket.
    assert requests.get(f"{edge.url}/seal/x", headers=edge.tokens.bearer(aud="xsn:seal", client_id="other")).ok


def test_hop_by_hop_headers_are_stripped_both_ways(edge):
    raw = (f"GET /seal/echo HTTP/1.1\r\nHost: {_host(edge)}\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\n"
           f"Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: Basic eA==\r\n"
           f"Authorization: Bearer {edge.tokens.token(aud='xsn:seal')}\r\n\r\n").encode()
    status, _, body = parse_raw(edge.raw(raw))
    assert status == 200
    seen = headers_of(json.loads(body))
    for name in ("x-drop-me", "keep-alive", "te", "upgrade", "proxy-authorization"):
        assert name not in seen
    response = requests.get(f"{edge.url}/seal/hop", headers=edge.tokens.bearer(aud="xsn:seal"))
    assert "X-Secret-Hop" not in response.headers and response.headers["Set-Cookie"] == "a=1"


def test_large_responses_stream(edge):
    response = requests.get(f"{edge.url}/seal/big?size=4194304", headers=edge.tokens.bearer(aud="xsn:seal"),
                            stream=True)
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert sum(len(c) for c in response.iter_content(65536)) == 4194304
    assert edge.records(response.headers["X-Request-ID"])[0]["bytes_out"] == 4194304


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


def test_html_503_pages_of_a_public_route_leave_the_circuit_closed(start_edge, tmp_path):
    """A service's own HTML 503 page (the console login while identity's IdP is down) on a public
    route: six GETs are each sent once and passed on, and cannot open the circuit for the service."""
    from flask import Flask
    from werkzeug.serving import make_server

    sent: list[str] = []
    app = Flask("console")

    @app.route("/<path:path>")
    def page(path: str):
        sent.append(path)
        return "<html><body>Sign-in is unavailable</body></html>", 503, {"Content-Type": "text/html"}

    path = str(tmp_path / "identity.sock")
    server = make_server(f"unix://{path}", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        edge = start_edge(GATEWAY_BREAKER_FAILURES=2, GATEWAY_RETRIES=2, GATEWAY_UPSTREAM_SOCKETS={"identity": path})
        answers = [requests.get(f"{edge.url}/identity/.well-known/openid-configuration") for _ in range(6)]
        assert [a.status_code for a in answers] == [503] * 6
        assert "Sign-in is unavailable" in answers[0].text
        assert sent.count(".well-known/openid-configuration") == 6  # besides the edge's /livez probes
        identity = requests.get(f"{edge.url}/readyz").json()["upstreams"]["identity"]
        assert (identity["state"], identity["failures"]) == ("closed", 0)
    finally:
        server.shutdown()
        thread.join(5)


def test_a_body_the_service_breaks_off_counts_as_a_failure(start_edge):
    edge = start_edge(GATEWAY_BREAKER_FAILURES=1)
    token = edge.tokens.bearer(aud="xsn:seal")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{edge.url}/seal/cut", headers=token).content  # noqa: B018 - read the body
    opened = requests.get(f"{edge.url}/seal/x", headers=token)
    assert opened.status_code == 503 and opened.json()["code"] == "upstream_circuit_open"


def test_an_upstream_on_a_unix_socket(start_edge, tmp_path):
    """``GATEWAY_UPSTREAM_SOCKETS``: the edge reaches the service at its socket (nothing listens
    at its URL's port), and tells it the URL's ``host:port`` as ``Host``."""
    from werkzeug.serving import make_server

    from tests.gateway.conftest import echo_app

    path = str(tmp_path / "payment.sock")
    server = make_server(f"unix://{path}", 0, echo_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        edge = start_edge(GATEWAY_UPSTREAM_SOCKETS={"payment": path})
        response = requests.get(f"{edge.url}/payment/x", headers=edge.tokens.bearer(aud="xsn:payment"))
        assert response.status_code == 200
        assert headers_of(response.json())["host"] == [edge.gateway.upstreams["payment"].pool.host_header]
        assert requests.get(f"{edge.url}/licenses/x", headers=edge.tokens.bearer(aud="xsn:licenses")).status_code == 502
    finally:
        server.shutdown()
        thread.join(5)


def test_upstream_5xx_is_passed_on_and_audited_as_error(edge):
    response = requests.get(f"{edge.url}/seal/status/500", headers=edge.tokens.bearer(aud="xsn:seal"))
    assert response.status_code == 500
    record = edge.records(response.headers["X-Request-ID"])[0]
    assert record["outcome"] == "error" and record["reason"] == "upstream_500"


def test_failing_audit_answers_503_and_forwards_nothing(start_edge):
    edge = start_edge()
    token = edge.tokens.bearer(aud="xsn:seal")
    edge.sink.fail = True
    failed = requests.get(f"{edge.url}/seal/x", headers=token)
    assert failed.status_code == 503 and failed.json()["code"] == "audit_unavailable"
    # While the sink fails the gateway forwards nothing: the upstream (an echo) is never reached.
    refused = requests.post(f"{edge.url}/seal/verify", data=b"do-not-send", headers=token)
    assert refused.status_code == 503 and "body_length" not in refused.text
    assert requests.get(f"{edge.url}/readyz").status_code == 503
    edge.sink.fail = False
    time.sleep(1.1)
    assert requests.get(f"{edge.url}/seal/x", headers=token).status_code == 200


def test_health_endpoints_of_the_gateway_itself(edge):
    assert requests.get(f"{edge.url}/livez").json() == {"status": "ok"}
    ready = requests.get(f"{edge.url}/readyz")
    assert ready.status_code == 200 and ready.json()["token_keys"] is True
    assert "xsn_gateway_requests_total" in requests.get(f"{edge.url}/metrics").text


def test_gateway_admin_app_is_under_its_prefix(edge):
    response = requests.get(f"{edge.url}/gateway/openapi.json")
    assert response.status_code == 200
    assert headers_of(response.json())["x-forwarded-prefix"] == ["/gateway"]


def test_concurrent_requests_each_get_one_record(edge):
    token = edge.tokens.bearer(aud="xsn:seal")
    ids = [f"concurrent-{i:04d}" for i in range(20)]

    def call(request_id: str) -> None:
        requests.get(f"{edge.url}/seal/x", headers={**token, "X-Request-ID": request_id})

    threads = [threading.Thread(target=call, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for request_id in ids:
        assert len(edge.records(request_id)) == 1


def test_root_documents_come_from_the_admin_app(edge):
    body = requests.get(f"{edge.url}/openapi.json").json()
    assert body["path"] == "/openapi.json"
    assert headers_of(body)["x-forwarded-prefix"] == ["/gateway"]


def test_expect_100_continue_after_the_checks(edge):
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(f"POST /seal/verify HTTP/1.1\r\nHost: {_host(edge)}\r\nContent-Length: 4\r\n"
                     f"Expect: 100-continue\r\nConnection: close\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"abcd")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, body = parse_raw(answer)
    assert status == 200 and json.loads(body)["body_length"] == 4
    # Refused before the body is sent: no 100 Continue for a request the gateway will not take.
    status, _, _ = parse_raw(edge.raw(f"POST /seal/seals HTTP/1.1\r\nHost: {_host(edge)}\r\nContent-Length: 4\r\n"
                                      f"Expect: 100-continue\r\n\r\n".encode()))
    assert status == 401


def test_broken_chunked_body_after_the_head_is_never_forwarded(start_edge):
    """aiohttp's parser does not hand a framing error after the head to the body reader: the
    request then ends at the body timeout (408). Either way nothing reaches the service."""
    edge = start_edge(GATEWAY_BODY_TIMEOUT=1.0)
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(f"POST /seal/verify HTTP/1.1\r\nHost: {_host(edge)}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        time.sleep(0.2)  # the head is dispatched alone; the broken chunk comes while the body is read
        sock.sendall(b"5\r\nhello\r\nzz\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, body = parse_raw(answer)
    assert status in (400, 408) and json.loads(body)["code"] in ("malformed_request", "request_timeout")
    assert not [r for r in edge.sink.records if r["status"] == 200]


@pytest.mark.parametrize(("sockets", "message"), [
    ({"paymnet": "/run/xsn/payment.sock"}, "unknown upstreams: paymnet"),
    ({"payment": "run/payment.sock"}, "must be absolute: payment='run/payment.sock'"),
    ("/run/xsn/payment.sock", "must map upstream names"),
], ids=["unknown-upstream", "relative-path", "not-a-mapping"])
def test_bad_upstream_sockets_are_refused_at_startup(start_edge, sockets, message):
    with pytest.raises(RuntimeError, match=message):
        start_edge(GATEWAY_UPSTREAM_SOCKETS=sockets)
