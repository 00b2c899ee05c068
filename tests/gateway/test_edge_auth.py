"""Tokens at the door (a real edge over TCP): a missing, bad, under-scoped, doubled or revoked
token is refused with RFC 6750's answers, on every request, a route resolved before included."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.gateway.conftest import parse_raw


def test_missing_token_is_rfc6750(edge):
    response = requests.get(f"{edge.url}/seal/seals")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="xsn"'
    assert response.json()["code"] == "token_missing"


def _b64(value: dict) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


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
    raw = (f"GET /seal/seals HTTP/1.1\r\nHost: {edge.host}\r\nAuthorization: Bearer {token}\r\n"
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
