"""The token verifier every service uses refuses every malformed or misdirected token."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc.jwk import ECKey, RSAKey

from common.errors import ServiceUnavailable
from common.web.auth import JWKSCache, TokenVerifier
from tests.support.suite import TokenFactory


@pytest.fixture
def client(make_app, tokens):
    app = make_app("seal")
    tokens.install(app)
    return app.test_client()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def whoami(client, token):
    return client.get("/auth/whoami", headers={"Authorization": f"Bearer {token}"})


def test_valid_token_is_accepted(client, tokens):
    response = whoami(client, tokens.token(sub="p-1", scope="seal:sign", client_id="app-1"))
    assert response.status_code == 200
    assert response.json["sub"] == "p-1" and response.json["client_id"] == "app-1"


def test_audience_list_containing_ours_is_accepted(client, tokens):
    assert whoami(client, tokens.token(aud=["xsn:payment", "xsn:seal"])).status_code == 200


@pytest.mark.parametrize("case", [
    "expired", "not_yet_valid", "wrong_aud", "wrong_iss", "unknown_kid", "wrong_typ",
    "missing_jti", "other_key_same_kid", "iat_string", "garbage",
])
def test_bad_tokens_are_refused(client, tokens, case):
    now = int(time.time())
    token = {
        "expired": lambda: tokens.token(iat=now - 1000, exp=now - 100),
        "not_yet_valid": lambda: tokens.token(nbf=now + 600),
        "wrong_aud": lambda: tokens.token(aud="xsn:payment"),
        "wrong_iss": lambda: tokens.token(iss="https://evil.example/identity"),
        "unknown_kid": lambda: tokens.token(header={"kid": "nobody"}),
        "wrong_typ": lambda: tokens.token(header={"typ": "JWT"}),
        "missing_jti": lambda: tokens.token(jti=None),
        "other_key_same_kid": lambda: tokens.token(key=ECKey.generate_key("P-256", parameters={"kid": "test-key-1"})),
        "iat_string": lambda: tokens.token(iat="yesterday"),
        "garbage": lambda: "not.a.token",
    }[case]()
    response = whoami(client, token)
    assert response.status_code == 401, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] in ("invalid_token", "token_expired")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_alg_none_is_refused(client, tokens):
    header = {"alg": "none", "typ": "at+jwt", "kid": "test-key-1"}
    payload = json.loads(base64.urlsafe_b64decode(tokens.token().split(".")[1] + "=="))
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."
    assert whoami(client, token).status_code == 401


def test_hs256_signed_with_the_public_key_is_refused(client, tokens):
    """The algorithm-confusion attack: HMAC keyed with the verifier's public key bytes."""
    import hashlib
    import hmac

    public_pem = tokens.key.as_pem(private=False)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": "test-key-1"}
    payload = json.loads(base64.urlsafe_b64decode(tokens.token().split(".")[1] + "=="))
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    response = whoami(client, f"{signing_input}.{b64(mac)}")
    assert response.status_code == 401
    assert "HS256" in response.json["detail"]


def test_rs256_token_with_rsa_key_of_unknown_kid_is_refused(client, tokens):
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    assert whoami(client, tokens.token(header={"alg": "RS256", "kid": "rsa-1"}, key=rsa)).status_code == 401


def test_missing_or_malformed_authorization_header(client):
    assert client.get("/auth/whoami").json["code"] == "token_missing"
    assert client.get("/auth/whoami", headers={"Authorization": "Basic abc"}).status_code == 401


def test_scope_check(make_app, tokens):
    from flask.views import MethodView
    from flask_smorest import Blueprint

    from common.web.auth import require_token

    blp = Blueprint("scoped", __name__)

    @blp.route("/scoped")
    class Scoped(MethodView):
        @require_token("audit:read")
        def get(self):
            return {"ok": True}

    app = make_app("seal")
    app.extensions["xsn_api"].register_blueprint(blp)
    tokens.install(app)
    client = app.test_client()
    denied = client.get("/scoped", headers=tokens.bearer(scope="seal:sign"))
    assert denied.status_code == 403 and denied.json["code"] == "insufficient_scope"
    assert client.get("/scoped", headers=tokens.bearer(scope="seal:sign audit:read")).status_code == 200


def test_unreachable_jwks_fails_closed():
    def fetch():
        raise OSError("identity down")

    verifier = TokenVerifier(issuer="i", audience="a", jwks=JWKSCache(fetch))
    with pytest.raises(ServiceUnavailable) as info:
        verifier.verify(TokenFactory(issuer="i").token(aud="a"))
    assert info.value.code == "token_keys_unavailable"


def test_unknown_kids_do_not_hammer_the_jwks_endpoint(tokens):
    calls = []
    clock = [0.0]

    def fetch():
        calls.append(1)
        return tokens.jwks()

    cache = JWKSCache(fetch, clock=lambda: clock[0], min_refresh=10)
    for i in range(20):
        assert cache.get(f"random-{i}") is None
    assert len(calls) == 1
    clock[0] = 11
    cache.get("another")
    assert len(calls) == 2
    assert cache.get("test-key-1") is not None


def test_rs256_and_pyjwt_signed_tokens_verify(tokens):
    """Tokens signed by another JOSE library (PyJWT) verify: the signature check is standard."""
    import jwt as pyjwt

    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    jwks = {"keys": [tokens.key.as_dict(private=False), rsa.as_dict(private=False)]}
    verifier = TokenVerifier(issuer=tokens.issuer, audience="xsn:seal", jwks=JWKSCache(lambda: jwks))
    now = int(time.time())
    claims = {"iss": tokens.issuer, "sub": "s", "aud": "xsn:seal", "client_id": "c", "iat": now,
              "exp": now + 60, "jti": "j1"}
    es = pyjwt.encode(claims, tokens.key.as_pem(private=True), algorithm="ES256",
                      headers={"kid": "test-key-1", "typ": "at+jwt"})
    rs = pyjwt.encode(claims, rsa.as_pem(private=True), algorithm="RS256", headers={"kid": "rsa-1", "typ": "at+jwt"})
    assert verifier.verify(es)["sub"] == "s"
    assert verifier.verify(rs)["jti"] == "j1"
    # An ES256 header naming the RSA key is refused (key type must match the algorithm).
    mixed = pyjwt.encode(claims, tokens.key.as_pem(private=True), algorithm="ES256",
                         headers={"kid": "rsa-1", "typ": "at+jwt"})
    with pytest.raises(Exception) as info:
        verifier.verify(mixed)
    assert getattr(info.value, "code", None) == "invalid_token"


def test_a_verified_token_skips_only_the_signature_check_while_its_key_stays(tokens, monkeypatch):
    from common.crypto import access_tokens

    document = {"keys": [tokens.key.as_dict(private=False)]}
    clock = [0.0]
    jwks = JWKSCache(lambda: document, clock=lambda: clock[0], ttl=300, min_refresh=10)
    now = [time.time()]
    verifier = TokenVerifier(issuer=tokens.issuer, audience="xsn:seal", jwks=jwks, leeway=0, clock=lambda: now[0])
    checks = []
    real = access_tokens.verify_jws_signature
    monkeypatch.setattr(access_tokens, "verify_jws_signature", lambda *a: checks.append(1) or real(*a))
    token = tokens.token(aud="xsn:seal", exp=int(now[0]) + 60)
    first = verifier.verify(token)
    first["sub"] = "changed by the caller"
    assert verifier.verify(token)["sub"] != "changed by the caller"  # a copy each time
    assert len(checks) == 1  # the second call did not redo the signature math
    # Expiry is still judged on every call.
    now[0] += 120
    with pytest.raises(access_tokens.InvalidToken) as info:
        verifier.verify(token)
    assert info.value.code == "token_expired"
    # The key leaves the JWKS (rotated out after a compromise): the cached verdict no longer counts.
    now[0] -= 120
    document = {"keys": [ECKey.generate_key("P-256", parameters={"kid": "rotated-in"}).as_dict(private=False)]}
    clock[0] = 400  # past the JWKS ttl: the next lookup refetches
    with pytest.raises(access_tokens.InvalidToken):
        verifier.verify(token)
    # A token that fails is never cached: a bad signature fails every time.
    document = {"keys": [tokens.key.as_dict(private=False)]}
    clock[0] = 800
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(access_tokens.InvalidToken):
            verifier.verify(forged)
    # Nor is a well-signed token whose claims fail (another audience): its signature is checked
    # again on every call, so a later change of the audience rule could not be skipped by a cache.
    elsewhere = tokens.token(aud="xsn:payment", exp=int(now[0]) + 60)
    before = len(checks)
    for _ in range(2):
        with pytest.raises(access_tokens.InvalidToken):
            verifier.verify(elsewhere)
    assert len(checks) == before + 2


def test_a_failed_jwks_fetch_is_logged_by_its_exception_type_not_its_message():
    from structlog.testing import capture_logs

    def fetch():
        raise OSError("https://svc:s3cret@identity/jwks.json refused")

    verifier = TokenVerifier(issuer="i", audience="a", jwks=JWKSCache(fetch))
    with capture_logs() as captured, pytest.raises(ServiceUnavailable):
        verifier.verify(TokenFactory(issuer="i").token(aud="a"))
    assert [(e["event"], e["error_type"]) for e in captured] == [("jwks_fetch_failed", "OSError")]
    assert "s3cret" not in repr(captured)
