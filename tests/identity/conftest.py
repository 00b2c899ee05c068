"""Fixtures for the identity tests: an app with cheap argon2, a DB session, page helpers."""

from __future__ import annotations

import itertools

import pytest

from common.db import get_db
from tests.support.console import CSRF_RE

# argon2id at its minimum cost: the tests check behaviour, not the cost (defaults are ~100 ms/hash).
FAST_HASH = {"PASSWORD_HASH_TIME_COST": 1, "PASSWORD_HASH_MEMORY_COST": 8, "PASSWORD_HASH_PARALLELISM": 1}
# With XSN_TEST_REDIS_URL the limit counters outlive a test (every test client is 127.0.0.1):
# tests that check a limit set a low one with keys of their own.
GENEROUS_LIMITS = {"LOGIN_RATE_LIMIT": "10000/minute", "PASSWORD_RESET_RATE_LIMIT": "10000/minute",
                   "REALNAME_RATE_LIMIT": "10000/minute"}
POOL_SIZE = 8  # more keys than any one test's database holds (rotation tests make a few)


@pytest.fixture(scope="session", autouse=True)
def premade_token_keys():
    """Token-signing keys made once per test session, not per test: each seeded app needs two
    RSA-2048 and two P-256 keys, and RSA generation dominated the identity tests' set-up.
    Handed out in turn, so the keys within one test's database are still distinct."""
    from common.crypto import keystore

    made = keystore.new_private_key
    pools = {alg: [made(alg) for _ in range(POOL_SIZE)] for alg in (keystore.ES256, keystore.RS256)}
    turns = {alg: itertools.cycle(pool) for alg, pool in pools.items()}

    def premade(algorithm: str):
        return next(turns[algorithm]) if algorithm in turns else made(algorithm)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keystore, "new_private_key", premade)
        yield pools


@pytest.fixture
def identity_app(make_app):
    def build(**overrides):
        # The in-memory notifier: what the hub would be asked to send (tests/identity/test_recovery.py
        # checks the hub notifier and the worker's relay).
        return make_app("identity", **{**FAST_HASH, **GENEROUS_LIMITS, "LOGIN_MAX_FAILURES": 3,
                                       "IDENTITY_NOTIFIER": "memory", **overrides})

    return build


@pytest.fixture
def app(identity_app):
    return identity_app()


@pytest.fixture
def db(app):
    with app.app_context(), get_db(app).session() as session:
        yield session


@pytest.fixture
def seeded_identity_app(identity_app):
    """Build an identity app with ``overrides`` and seed it (demo people, clients, keys)."""
    from identity.seed import seed

    def build(**overrides):
        app = identity_app(**overrides)
        with app.app_context():
            seed(app)
        return app

    return build


@pytest.fixture
def seeded(app):
    from identity.seed import seed

    with app.app_context():
        seed(app)
    return app


def csrf_token(client, path: str = "/login") -> str:
    response = client.get(path)
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


class Pages:
    """Drives the pages like a browser: fetches the CSRF token, then posts the form."""

    def __init__(self, client) -> None:
        self.client = client

    def post(self, path: str, data: dict, *, token_from: str | None = None, **kwargs):
        form = {"csrf_token": csrf_token(self.client, token_from or path), **data}
        return self.client.post(path, data=form, **kwargs)

    def login(self, login: str, password: str = "demo-password-1", **extra):
        return self.post("/login", {"login": login, "password": password, **extra})


@pytest.fixture
def pages(client):
    return Pages(client)


@pytest.fixture
def make_pages(app):
    return lambda: Pages(app.test_client())
