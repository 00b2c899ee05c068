"""Access tokens at the gateway: keys fetched without blocking, refreshed at a bounded rate on
an unknown kid, revoked tokens and sessions refused, Authorization parsed strictly."""

from __future__ import annotations

import time

import pytest
from joserfc.jwk import ECKey
from structlog.testing import capture_logs

from gateway.edge.problems import MultipleAuthorization, ScopeProblem, TokenProblem
from gateway.edge.tokens import AccessTokens, RevocationList, bearer, check_scopes
from tests.gateway.conftest import run_async
from tests.support.suite import TokenFactory

ISSUER = "http://127.0.0.1:8000/identity"


class Keys:
    """A JWKS endpoint that counts its fetches and can rotate or fail."""

    def __init__(self, factory: TokenFactory) -> None:
        self.documents = [factory.jwks()]
        self.fetches = 0
        self.fail = False

    async def __call__(self) -> dict:
        self.fetches += 1
        if isinstance(self.fail, BaseException):
            raise self.fail
        if self.fail:
            raise OSError("identity down")
        return self.documents[-1]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def factory() -> TokenFactory:
    return TokenFactory(issuer=ISSUER)


def _tokens(keys, clock=None, revocations=None) -> AccessTokens:
    return AccessTokens(issuer=ISSUER, fetch_jwks=keys, revocations=revocations or RevocationList(),
                        min_refresh=10.0, clock=clock or Clock())


def test_valid_token_and_cache(factory):
    keys = Keys(factory)
    tokens = _tokens(keys)
    token = factory.token(aud="xsn:seal", scope="seal:sign")
    claims = run_async(tokens.verify(token, "xsn:seal"))
    assert claims["scope"] == "seal:sign"
    with pytest.raises(TokenProblem):
        run_async(tokens.verify(token, "xsn:payment"))  # the audience is checked per service
    assert keys.fetches == 1


def test_unknown_kid_refreshes_at_a_bounded_rate(factory):
    keys, clock = Keys(factory), Clock()
    tokens = _tokens(keys, clock)
    run_async(tokens.verify(factory.token(aud="xsn:seal"), "xsn:seal"))
    stranger = ECKey.generate_key("P-256", parameters={"kid": "rotated-2", "alg": "ES256"})

    async def flood():
        for _ in range(20):
            with pytest.raises(TokenProblem):
                await tokens.verify(factory.token(aud="xsn:seal", header={"kid": "rotated-2"}, key=stranger),
                                    "xsn:seal")

    clock.now += 11
    run_async(flood())
    assert keys.fetches == 2  # one refresh for twenty unknown-kid tokens
    # identity rotates: the new key is published, and after min_refresh a token under it passes.
    keys.documents.append({"keys": [factory.key.as_dict(private=False), stranger.as_dict(private=False)]})
    clock.now += 11
    token = factory.token(aud="xsn:seal", header={"kid": "rotated-2"}, key=stranger)
    assert run_async(tokens.verify(token, "xsn:seal"))["aud"] == "xsn:seal"


def test_no_keys_fails_closed(factory):
    keys = Keys(factory)
    keys.fail = True
    with pytest.raises(TokenProblem) as caught:
        run_async(_tokens(keys).verify(factory.token(aud="xsn:seal"), "xsn:seal"))
    assert caught.value.code == "token_keys_unavailable"


def test_failed_refresh_keeps_the_keys(factory):
    keys, clock = Keys(factory), Clock()
    tokens = _tokens(keys, clock)
    run_async(tokens.refresh())
    keys.fail = True
    clock.now += 400  # past the TTL: a refresh is tried and fails
    assert run_async(tokens.verify(factory.token(aud="xsn:seal"), "xsn:seal"))


def test_a_failed_fetch_is_logged_with_its_exception_type(factory):
    # A timeout's str() is empty: the line said error="" at start-up, while identity was starting.
    # The type is all the line carries (the project's convention): a message may quote a URL
    # with its credentials.
    keys = Keys(factory)
    keys.fail = TimeoutError()
    with capture_logs() as captured:
        run_async(_tokens(keys).refresh())
    assert [(e["event"], e["error_type"]) for e in captured] == [("jwks_fetch_failed", "TimeoutError")]
    keys.fail = OSError("https://svc:s3cret@identity/jwks.json down")
    with capture_logs() as captured:
        run_async(_tokens(keys).refresh())
    assert captured[0]["error_type"] == "OSError" and "s3cret" not in repr(captured)


def test_revoked_tokens_and_sessions(factory):
    revocations = RevocationList()
    tokens = _tokens(Keys(factory), revocations=revocations)
    token = factory.token(aud="xsn:seal", jti="j-1")
    in_session = factory.token(aud="xsn:seal", sid="s-1")
    assert run_async(tokens.verify(token, "xsn:seal"))
    revocations.add({"jti": "j-1", "exp": time.time() + 60})
    revocations.add({"kind": "session", "sid": "s-1", "revoked_at": time.time()})
    for revoked in (token, in_session):
        with pytest.raises(TokenProblem) as caught:
            run_async(tokens.verify(revoked, "xsn:seal"))
        assert caught.value.code == "token_revoked"


def test_revocation_list_forgets_what_expired():
    clock = Clock()
    revocations = RevocationList(session_ttl=100, clock=clock)
    revocations.add({"jti": "old", "exp": 10})
    revocations.add({"jti": "new", "exp": 1000})
    revocations.add({"sid": "s"})
    clock.now += 200
    revocations.prune()
    assert set(revocations.tokens) == {"new"} and not revocations.sessions


def test_cached_token_still_expires(factory):
    now = [time.time()]
    tokens = AccessTokens(issuer=ISSUER, fetch_jwks=Keys(factory), revocations=RevocationList(), clock=Clock(),
                          wall_clock=lambda: now[0])
    token = factory.token(aud="xsn:seal", lifetime=5)
    assert run_async(tokens.verify(token, "xsn:seal"))
    verifier = tokens._verifiers["xsn:seal"]
    assert token in verifier._verified  # the shared verifier's cache holds it: the next call skips the signature
    now[0] += 60
    with pytest.raises(TokenProblem) as caught:
        run_async(tokens.verify(token, "xsn:seal"))
    assert caught.value.code == "token_expired"


def test_the_verified_token_cache_is_the_shared_verifiers(factory, monkeypatch):
    """One cache: a second call does not check the signature again, and a refresh drops it."""
    keys = Keys(factory)
    tokens = _tokens(keys)
    token = factory.token(aud="xsn:seal")
    run_async(tokens.verify(token, "xsn:seal"))
    calls = []
    import common.crypto.access_tokens as shared

    real = shared.verify_jws_signature
    monkeypatch.setattr(shared, "verify_jws_signature", lambda *a: calls.append(1) or real(*a))
    run_async(tokens.verify(token, "xsn:seal"))
    assert calls == []
    run_async(tokens.refresh(bounded=False))
    run_async(tokens.verify(token, "xsn:seal"))
    assert calls == [1]


def test_authorization_header_parsing():
    assert bearer(["Bearer abc"]) == "abc"
    assert bearer(["bearer  abc "]) == "abc"
    for values in ([], ["Basic eDp5"], ["Bearer "], ["abc"]):
        with pytest.raises(TokenProblem) as caught:
            bearer(values)
        assert caught.value.code == "token_missing"
    with pytest.raises(MultipleAuthorization):
        bearer(["Bearer a", "Bearer b"])


def test_scopes_all_required():
    check_scopes({"scope": "a b c"}, ("a", "b"))
    with pytest.raises(ScopeProblem) as caught:
        check_scopes({"scope": "a"}, ("a", "b"))
    assert caught.value.extra["required_scopes"] == ["a", "b"]
