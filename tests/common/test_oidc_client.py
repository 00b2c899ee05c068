"""The one OIDC relying party: discovery, PKCE, the code exchange, and every ID-token check.

A small provider is served over real HTTP (discovery, JWKS, token, userinfo); ID tokens are
minted here with keys the provider publishes, then each check is broken on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, request
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from common.oidc_client import (
    Client,
    InvalidIDToken,
    IssuerMismatch,
    OpenIDProvider,
    ProviderUnavailable,
    TokenRequestRefused,
    s256_challenge,
    token_hash,
)
from tests.support.suite import free_port

NOW = 1_900_000_000
CLIENT = Client("xian-app", "https://app.example/callback", scope="openid profile", client_secret="s3cret")
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


def fake_provider(issuer: str | None = None) -> Flask:
    """``issuer`` is filled in once the server's port is known (``app.issuer``)."""
    app = Flask("fake-provider")
    app.issuer = issuer
    app.keys = [EC_KEY, RSA_KEY]
    app.hits = {"jwks": 0, "discovery": 0}
    app.token_answer = ({"access_token": "at-1", "id_token": "id-1", "token_type": "Bearer"}, 200)
    app.token_requests = []

    @app.get("/.well-known/openid-configuration")
    def discovery():
        app.hits["discovery"] += 1
        base = app.issuer
        return {"issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks", "userinfo_endpoint": f"{base}/userinfo",
                "end_session_endpoint": f"{base}/logout"}

    @app.get("/jwks")
    def jwks():
        app.hits["jwks"] += 1
        return {"keys": [key.as_dict(private=False) for key in app.keys]}

    @app.post("/token")
    def token():
        app.token_requests.append({"form": request.form.to_dict(), "authorization": request.authorization})
        body, status = app.token_answer
        return (body, status) if isinstance(body, dict) else (body, status, {"Content-Type": "text/html"})

    @app.get("/userinfo")
    def userinfo():
        if request.headers.get("Authorization") != "Bearer at-1":
            return {"error": "invalid_token"}, 401
        return {"sub": "u-1", "name": "张三"}

    return app


@pytest.fixture
def provider(serve_app):
    """(the served fake provider app, an OpenIDProvider for it with a fixed clock)."""
    app = fake_provider()
    app.issuer = serve_app(app)
    return app, OpenIDProvider(app.issuer, clock=lambda: NOW)


def id_claims(issuer: str, **changes) -> dict:
    claims = {"iss": issuer, "sub": "u-1", "aud": CLIENT.client_id, "iat": NOW - 5, "exp": NOW + 300,
              "nonce": "n-1", "at_hash": token_hash("at-1", "ES256")}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not DROP}


DROP = object()


def mint(claims: dict, key=EC_KEY, alg: str = "ES256", **header) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, claims, key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(rp: OpenIDProvider, token: str, nonce: str = "n-1", access_token: str | None = "at-1") -> list[str]:
    with pytest.raises(InvalidIDToken) as caught:
        rp.verify_id_token(token, client_id=CLIENT.client_id, nonce=nonce, access_token=access_token)
    assert caught.value.status == 502 and caught.value.code == "oidc_bad_id_token"
    return caught.value.failed


# -- a valid token passes ---------------------------------------------------------------------------
@pytest.mark.parametrize("key, alg", [(EC_KEY, "ES256"), (RSA_KEY, "RS256")])
def test_a_valid_id_token_verifies(provider, key, alg):
    app, rp = provider
    claims = id_claims(app.issuer, at_hash=token_hash("at-1", alg))
    token = mint(claims, key, alg)
    assert rp.verify_id_token(token, client_id=CLIENT.client_id, nonce="n-1", access_token="at-1") == claims


def test_several_audiences_are_fine_when_azp_names_us(provider):
    app, rp = provider
    claims = id_claims(app.issuer, aud=["other", CLIENT.client_id], azp=CLIENT.client_id)
    assert rp.verify_id_token(mint(claims), client_id=CLIENT.client_id, nonce="n-1")["azp"] == CLIENT.client_id


# -- every claim check refuses when wrong ------------------------------------------------------------
@pytest.mark.parametrize("changes, check", [
    ({"iss": "https://evil.example"}, "iss"),
    ({"iss": DROP}, "iss"),
    ({"sub": DROP}, "sub"),
    ({"sub": ""}, "sub"),
    ({"sub": 42}, "sub"),
    ({"aud": "someone-else"}, "aud"),
    ({"aud": ["someone-else"]}, "aud"),
    ({"aud": DROP}, "aud"),
    ({"azp": "someone-else"}, "azp"),
    ({"aud": [CLIENT.client_id, "other"]}, "azp"),  # several audiences and no azp
    ({"exp": NOW - 61}, "exp"),  # beyond the 60 s leeway
    ({"exp": DROP}, "exp"),
    ({"exp": str(NOW + 300)}, "exp"),
    ({"exp": True}, "exp"),
    ({"iat": NOW + 61}, "iat"),  # issued in the future
    ({"iat": NOW - 600 - 61}, "iat"),  # too old for a token just exchanged
    ({"iat": DROP}, "iat"),
    ({"nbf": NOW + 61}, "nbf"),
    ({"nonce": "another"}, "nonce"),
    ({"nonce": DROP}, "nonce"),
    ({"nonce": 1}, "nonce"),
    ({"at_hash": token_hash("another-access-token", "ES256")}, "at_hash"),
    ({"at_hash": 7}, "at_hash"),
])
def test_each_claim_check_refuses(provider, changes, check):
    app, rp = provider
    assert refused(rp, mint(id_claims(app.issuer, **changes))) == [check]


def test_the_expected_nonce_must_not_be_empty(provider):
    app, rp = provider
    assert refused(rp, mint(id_claims(app.issuer, nonce="")), nonce="") == ["nonce"]


def test_leeway_allows_a_little_clock_skew(provider):
    app, rp = provider
    token = mint(id_claims(app.issuer, exp=NOW - 30, iat=NOW + 30, nbf=NOW + 30))
    assert rp.verify_id_token(token, client_id=CLIENT.client_id, nonce="n-1")["sub"] == "u-1"


def test_at_hash_is_only_checked_against_a_given_access_token(provider):
    app, rp = provider
    token = mint(id_claims(app.issuer, at_hash=token_hash("not-this-one", "ES256")))
    assert rp.verify_id_token(token, client_id=CLIENT.client_id, nonce="n-1")["sub"] == "u-1"
    assert refused(rp, token) == ["at_hash"]


def test_token_hash_known_answer():
    # OIDC Core §3.1.3.6: base64url of the left half of SHA-256 of the ASCII token.
    digest = hashlib.sha256(b"jHkWEdUXMU1BwAsC4vtUsZwnNcXwVE9g").digest()
    assert token_hash("jHkWEdUXMU1BwAsC4vtUsZwnNcXwVE9g", "ES256") == b64(digest[:16])
    with pytest.raises(ValueError):
        token_hash("x", "HS256")


# -- signature, algorithm and form ---------------------------------------------------------------------
def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(provider):
    app, rp = provider
    impostor = ECKey.generate_key("P-256", parameters={"kid": EC_KEY.kid})
    assert refused(rp, mint(id_claims(app.issuer), impostor)) == ["signature"]


def test_alg_none_and_hmac_with_the_public_key_are_refused(provider):
    app, rp = provider
    payload = b64(json.dumps(id_claims(app.issuer)).encode())
    unsigned = f"{b64(json.dumps({'alg': 'none', 'kid': EC_KEY.kid}).encode())}.{payload}."
    assert refused(rp, unsigned) == ["format"]  # an empty signature segment is not even a JWS here
    assert refused(rp, unsigned + "AAAA") == ["alg"]
    header = b64(json.dumps({"alg": "HS256", "kid": RSA_KEY.kid}).encode())
    secret = json.dumps(RSA_KEY.as_dict(private=False)).encode()  # the classic confusion: public key as secret
    signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert refused(rp, f"{header}.{payload}.{signature}") == ["alg"]


def test_the_algorithm_allow_list_is_the_providers(provider):
    app, _ = provider
    rp = OpenIDProvider(app.issuer, algorithms=("ES256",), clock=lambda: NOW)
    assert refused(rp, mint(id_claims(app.issuer, at_hash=token_hash("at-1", "RS256")), RSA_KEY, "RS256")) == ["alg"]
    with pytest.raises(ValueError):
        OpenIDProvider(app.issuer, algorithms=("HS256",))


def test_a_key_of_another_family_than_the_algorithm_is_refused(provider):
    """A header saying ES256 with the kid of an RSA key never reaches a signature check."""
    app, rp = provider
    token = mint(id_claims(app.issuer), RSA_KEY, "RS256")
    header, payload, signature = token.split(".")
    forged_header = b64(json.dumps({"alg": "ES256", "kid": RSA_KEY.kid}).encode())
    assert refused(rp, f"{forged_header}.{payload}.{signature}") == ["alg"]


def test_a_jwk_stating_another_alg_or_use_is_not_used(provider):
    app, rp = provider
    app.keys = [ECKey.import_key(EC_KEY.as_dict(), parameters={"kid": "ec-1", "alg": "ES384"})]
    assert refused(rp, mint(id_claims(app.issuer))) == ["alg"]
    rp = OpenIDProvider(app.issuer, clock=lambda: NOW)
    app.keys = [ECKey.import_key(EC_KEY.as_dict(), parameters={"kid": "ec-1", "use": "enc"})]
    assert refused(rp, mint(id_claims(app.issuer))) == ["alg"]


def test_a_critical_header_parameter_is_refused(provider):
    app, rp = provider
    header = b64(json.dumps({"alg": "ES256", "kid": EC_KEY.kid, "crit": ["b64"], "b64": True}).encode())
    _, payload, signature = mint(id_claims(app.issuer)).split(".")
    assert refused(rp, f"{header}.{payload}.{signature}") == ["crit"]


@pytest.mark.parametrize("header, check", [
    ({"kid": ""}, "kid"),
    ({"kid": "no-such-key"}, "kid"),
])
def test_header_checks(provider, header, check):
    app, rp = provider
    assert refused(rp, mint(id_claims(app.issuer), **header)) == [check]


@pytest.mark.parametrize("spoil", [
    lambda t: t.replace(".", ".!", 1),        # a stray character base64 decoders would skip
    lambda t: t.replace(".", ". ", 1),
    lambda t: t + "=",                        # padding is not base64url in JWS
    lambda t: t[: t.rindex(".")] + ".a+b/",  # the other base64 alphabet
    lambda t: t + ".AAAA",                   # four segments
    lambda t: t.split(".", 1)[1],            # two
    lambda t: t + "A" * 16384,               # far too long
    lambda t: b64(b"[1]") + t[t.index("."):],  # header not an object
    lambda t: "%%%." + t,
])
def test_a_malformed_compact_form_is_refused_not_normalised(provider, spoil):
    app, rp = provider
    assert refused(rp, spoil(mint(id_claims(app.issuer)))) == ["format"]


# -- keys ---------------------------------------------------------------------------------------------
def test_an_unknown_kid_refetches_the_keys_once_then_waits(provider):
    app, rp = provider
    rp.verify_id_token(mint(id_claims(app.issuer)), client_id=CLIENT.client_id, nonce="n-1")
    assert app.hits["jwks"] == 1
    rotated = ECKey.generate_key("P-256", parameters={"kid": "ec-2"})
    app.keys = [rotated]
    rp.jwks_min_refresh = 0  # the key was rotated a while ago
    assert rp.verify_id_token(mint(id_claims(app.issuer), rotated), client_id=CLIENT.client_id, nonce="n-1")
    assert app.hits["jwks"] == 2
    rp.jwks_min_refresh = 60  # a flood of random kids right after: no fetch per token
    for kid in ("r1", "r2", "r3"):
        assert refused(rp, mint(id_claims(app.issuer), ECKey.generate_key("P-256", parameters={"kid": kid}))) \
            == ["kid"]
    assert app.hits["jwks"] == 2


def test_unreadable_keys_are_unavailable_not_a_pass(provider):
    app, rp = provider
    app.keys = []
    app.view_functions["jwks"] = lambda: ("not json", 200)
    with pytest.raises(ProviderUnavailable):
        rp.verify_id_token(mint(id_claims(app.issuer)), client_id=CLIENT.client_id, nonce="n-1")


# -- discovery ---------------------------------------------------------------------------------------------
def test_discovery_naming_another_issuer_is_refused(serve_app):
    app = fake_provider("https://evil.example")
    rp = OpenIDProvider(serve_app(app))
    with pytest.raises(IssuerMismatch) as caught:
        rp.metadata()
    assert caught.value.status == 503


def test_an_unreachable_provider_is_unavailable():
    from structlog.testing import capture_logs

    rp = OpenIDProvider(f"http://127.0.0.1:{free_port()}", timeout=1)
    with capture_logs() as captured, pytest.raises(ProviderUnavailable) as caught:
        rp.authorization_request(CLIENT)
    assert caught.value.status == 503 and caught.value.code == "oidc_provider_unavailable"
    # The exception's type, not its message (the project's convention: a message may quote a
    # URL with its query or credentials); the path asked for is its own field.
    assert [(e["event"], e["error_type"], "error" in e) for e in captured] == [
        ("oidc_provider_unreachable", "ConnectionError", False)]


def test_discovery_is_cached(provider):
    app, rp = provider
    rp.metadata()
    rp.metadata()
    assert app.hits["discovery"] == 1
    rp.metadata(refresh=True)
    assert app.hits["discovery"] == 2


def test_an_internal_base_is_called_while_the_browser_gets_public_urls(serve_app):
    """Identity behind the gateway: discovery, keys and tokens on its internal URL."""
    app = fake_provider("https://gateway.example/identity")
    internal = serve_app(app)
    rp = OpenIDProvider("https://gateway.example/identity", internal_base=internal, clock=lambda: NOW)
    request_ = rp.authorization_request(CLIENT)
    assert request_.url.startswith("https://gateway.example/identity/authorize?")
    app.token_answer = ({"access_token": "at-1", "id_token": mint(id_claims(app.issuer))}, 200)
    tokens = rp.exchange_code(CLIENT, "code-1", request_.code_verifier)
    assert rp.verify_id_token(tokens["id_token"], client_id=CLIENT.client_id, nonce="n-1",
                              access_token=tokens["access_token"])["sub"] == "u-1"
    assert rp.end_session_url("idt", "https://app.example/bye").startswith("https://gateway.example/identity/logout?")


# -- the flow -------------------------------------------------------------------------------------------
def test_pkce_s256_known_answer():
    # RFC 7636 Appendix B.
    verifier, challenge = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert s256_challenge(verifier) == challenge


def test_the_authorization_request_carries_fresh_state_nonce_and_s256_challenge(provider):
    app, rp = provider
    first, second = rp.authorization_request(CLIENT, ui_locales="en"), rp.authorization_request(CLIENT)
    query = {name: values[0] for name, values in parse_qs(urlsplit(first.url).query).items()}
    assert first.url.startswith(f"{app.issuer}/authorize?")
    assert query == {"response_type": "code", "client_id": CLIENT.client_id, "redirect_uri": CLIENT.redirect_uri,
                     "scope": "openid profile", "state": first.state, "nonce": first.nonce,
                     "code_challenge": s256_challenge(first.code_verifier), "code_challenge_method": "S256",
                     "ui_locales": "en"}
    assert len({first.state, first.nonce, first.code_verifier}) == 3
    assert {first.state, first.nonce, first.code_verifier}.isdisjoint({second.state, second.nonce,
                                                                       second.code_verifier})
    assert len(first.code_verifier) >= 43  # RFC 7636 §4.1


def test_the_code_exchange_authenticates_a_confidential_client(provider):
    app, rp = provider
    assert rp.exchange_code(CLIENT, "code-1", "verifier-1")["access_token"] == "at-1"
    sent = app.token_requests[-1]
    assert sent["form"] == {"grant_type": "authorization_code", "code": "code-1",
                            "redirect_uri": CLIENT.redirect_uri, "code_verifier": "verifier-1"}
    assert (sent["authorization"].username, sent["authorization"].password) == ("xian-app", "s3cret")


def test_a_public_client_names_itself_in_the_body(provider):
    app, rp = provider
    public = Client("demo", "https://demo.example/cb")
    rp.exchange_code(public, "code-1", "verifier-1")
    assert app.token_requests[-1]["authorization"] is None
    assert app.token_requests[-1]["form"]["client_id"] == "demo"


@pytest.mark.parametrize("answer", [
    ({"error": "invalid_grant"}, 400),
    ({"access_token": "at-1"}, 200),  # no ID token
    ({"access_token": "at-1", "id_token": 5}, 200),
    ("<html>bad gateway</html>", 200),
    (["not", "an", "object"], 200),
])
def test_a_refused_or_incomplete_token_answer_is_refused(provider, answer):
    app, rp = provider
    app.token_answer = answer
    with pytest.raises(TokenRequestRefused) as caught:
        rp.exchange_code(CLIENT, "code-1", "v")
    assert caught.value.status == 502


def test_refresh_needs_no_id_token(provider):
    app, rp = provider
    app.token_answer = ({"access_token": "at-2", "refresh_token": "rt-2"}, 200)
    assert rp.refresh(Client("demo", "https://demo.example/cb"), "rt-1")["access_token"] == "at-2"
    assert app.token_requests[-1]["form"] == {"grant_type": "refresh_token", "refresh_token": "rt-1",
                                              "client_id": "demo"}


def test_userinfo(provider):
    _, rp = provider
    assert rp.userinfo("at-1") == {"sub": "u-1", "name": "张三"}
    with pytest.raises(ProviderUnavailable):
        rp.userinfo("at-wrong")


def test_the_module_needs_no_flask():
    import subprocess
    import sys

    code = "import sys, common.oidc_client; sys.exit(any(m.startswith(('flask', 'werkzeug')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

