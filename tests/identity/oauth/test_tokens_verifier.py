"""Tokens minted with identity's own keys, then bent: common.web.auth.TokenVerifier refuses each."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from common.db import get_db
from common.web.auth import InvalidToken, JWKSCache, TokenVerifier
from identity.oauth import tokens
from identity.oauth.context import state

ISSUER = "https://gov.example/identity"


@pytest.fixture
def minted(app_factory):
    app = app_factory
    with app.app_context(), get_db(app).session() as session:
        keys = state(app).keys
        jwks = tokens.jwks_document(session) if tokens.published_keys(session) else None
        if jwks is None:
            tokens.ensure_keys(session, state(app).kek)
            session.commit()
            jwks = tokens.jwks_document(session)

        def mint(header: dict | None = None, key=None, **changes) -> str:
            claims = tokens.access_token_claims(issuer=ISSUER, subject="p1", audience=["xsn:seal"], client_id="c",
                                                scope="seal:sign", lifetime=300)
            claims.update(changes)
            claims = {k: v for k, v in claims.items() if v is not None}
            kid, signing = keys.signing_key(session, "ES256")
            protected = {"alg": "ES256", "typ": "at+jwt", "kid": kid, **(header or {})}
            return jwt.encode(protected, claims, key or ECKey.import_key(signing), algorithms=[protected["alg"]])

        verifier = TokenVerifier(issuer=ISSUER, audience="xsn:seal", jwks=JWKSCache(lambda: jwks))
        yield mint, verifier, jwks


@pytest.fixture
def app_factory(identity_app):
    return identity_app(OAUTH_ISSUER=ISSUER)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_good_token_verifies(minted):
    mint, verifier, _ = minted
    assert verifier.verify(mint())["sub"] == "p1"


@pytest.mark.parametrize("changes", [
    {"exp": int(time.time()) - 3600},                       # expired
    {"nbf": int(time.time()) + 3600},                       # not yet valid
    {"iat": int(time.time()) + 3600, "nbf": None},          # issued in the future
    {"aud": "xsn:payment"},                                 # wrong audience
    {"iss": "https://evil.example/identity"},               # wrong issuer
    {"client_id": None},                                    # required claim missing
])
def test_bad_claims_refused(minted, changes):
    mint, verifier, _ = minted
    with pytest.raises(InvalidToken):
        verifier.verify(mint(**changes))


def test_alg_none_refused(minted):
    mint, verifier, _ = minted
    header, payload, _ = mint().split(".")
    kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    unsigned = f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{payload}."
    with pytest.raises(InvalidToken):
        verifier.verify(unsigned)


def test_hs256_signed_with_the_public_key_refused(minted):
    mint, verifier, jwks = minted
    public = next(k for k in jwks["keys"] if k["alg"] == "ES256")
    secret = OctKey.import_key(json.dumps(public).encode())  # the classic key-confusion attack
    forged = jwt.encode({"alg": "HS256", "typ": "at+jwt", "kid": public["kid"]},
                        {"iss": ISSUER, "sub": "p1", "aud": "xsn:seal", "client_id": "c", "scope": "seal:sign",
                         "iat": int(time.time()), "exp": int(time.time()) + 300, "jti": "x"},
                        secret, algorithms=["HS256"])
    with pytest.raises(InvalidToken):
        verifier.verify(forged)


def test_unknown_kid_and_foreign_key_refused(minted):
    mint, verifier, _ = minted
    stranger = ECKey.generate_key("P-256", parameters={"kid": "stranger"})
    with pytest.raises(InvalidToken):
        verifier.verify(mint(header={"kid": "stranger"}, key=stranger))
    with pytest.raises(InvalidToken):  # our kid, someone else's signature
        verifier.verify(mint(key=stranger))


def test_wrong_typ_refused(minted):
    mint, verifier, _ = minted
    with pytest.raises(InvalidToken):
        verifier.verify(mint(header={"typ": "JWT"}))  # e.g. an ID token presented as an access token


@pytest.mark.parametrize("stray", ["!", " ", "\n", "=", "+", "/", "%"])
def test_a_stray_character_in_a_segment_is_refused_not_skipped(minted, stray):
    """A lenient decoder drops characters outside the alphabet: the signature segment (not
    covered by the signature) would then still verify with junk in it."""
    mint, verifier, _ = minted
    token = mint()
    header, payload, signature = token.split(".")
    assert verifier.verify(token)
    middle = len(signature) // 2
    with pytest.raises(InvalidToken):
        verifier.verify(f"{header}.{payload}.{signature[:middle]}{stray}{signature[middle:]}")
    with pytest.raises(InvalidToken):
        verifier.verify(f"{header[:4]}{stray}{header[4:]}.{payload}.{signature}")


def test_strict_base64url_decoder():
    from common.crypto.access_tokens import b64url_decode

    assert b64url_decode("aGk") == b"hi" and b64url_decode("") == b""
    for bad in ("aGk=", "aG k", "aG+k", "a", "aGk\n", "aGk!"):
        with pytest.raises(ValueError):
            b64url_decode(bad)
