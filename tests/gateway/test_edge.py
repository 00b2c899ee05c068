"""Through the door: a real edge on a port, a real upstream behind it, requests over TCP; what
is forwarded (the boundary headers and the caller, hop-by-hop headers stripped both ways, bodies
and streamed answers), which hosts are served, each request's audit record, the gateway's own
endpoints. Tokens: ``test_edge_auth.py``; requests refused: ``test_edge_refusals.py``; limits:
``test_edge_limits.py``; upstreams failing: ``test_edge_upstreams.py``."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.gateway.conftest import headers_of, parse_raw


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
    assert seen["x-forwarded-host"] == [edge.host]
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


def test_a_page_on_another_allowed_host_is_sent_to_the_public_base_url(edge):
    # A console opened at localhost: its sign-in cookie would be set there, and identity sends it
    # back to the configured callback on 127.0.0.1 without it (登录未完成).
    page = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    moved = requests.get(f"http://localhost:{edge.port}/seal/manage/login?next=%2Fseal%2Fmanage", headers=page,
                         allow_redirects=False)
    assert moved.status_code == 307 and moved.content == b""
    assert moved.headers["Location"] == f"{edge.url}/seal/manage/login?next=%2Fseal%2Fmanage"
    record = edge.records(moved.headers["X-Request-ID"])[0]
    assert (record["status"], record["reason"], record["path"]) == (307, "canonical_host", "/seal/manage/login")
    assert requests.head(f"http://localhost:{edge.port}/docs", headers=page,
                         allow_redirects=False).headers["Location"] == f"{edge.url}/docs"
    # Served where asked: the public host itself, API calls, a token's call, anything but GET/HEAD.
    assert requests.get(f"{edge.url}/seal/manage", headers=page).json()["path"] == "/manage"
    assert requests.get(f"http://localhost:{edge.port}/seal/livez").status_code == 200
    token = edge.tokens.bearer(aud="xsn:seal")
    assert requests.get(f"http://localhost:{edge.port}/seal/things", headers={**page, **token},
                        allow_redirects=False).status_code == 200
    assert requests.post(f"{edge.url}/seal/verify", headers={**page, "Host": f"[::1]:{edge.port}"}, data=b"{}",
                         allow_redirects=False).status_code == 200
    # A path the gateway refuses is refused on any host, not sent to the public one.
    bad = requests.get(f"http://localhost:{edge.port}/seal/a/%2e%2e/b", headers=page, allow_redirects=False)
    assert bad.status_code == 400


def test_hop_by_hop_headers_are_stripped_both_ways(edge):
    raw = (f"GET /seal/echo HTTP/1.1\r\nHost: {edge.host}\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\n"
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


def test_body_is_read_whole_and_forwarded(edge):
    response = requests.post(f"{edge.url}/seal/verify", data=b"z" * 300_000)
    assert response.status_code == 200 and response.json()["body_length"] == 300_000
    assert edge.records(response.headers["X-Request-ID"])[0]["bytes_in"] == 300_000


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
