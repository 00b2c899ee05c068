"""The revocation feed (contract 2): revoked tokens and sessions for the gateway, and sid."""

from __future__ import annotations

import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.orm import sessionmaker

from common.crypto.keystore import load_kek
from common.db import get_db
from identity.oauth import revocations
from identity.oauth.seed import demo_secret
from tests.support.oauth import REDIRECT, Browser, pkce_pair, register

LI = "13900005678"


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app()


def client_token(app, client_id: str, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    response = app.test_client().post("/oauth/token", data=data,
                                      auth=(client_id, demo_secret(load_kek(app.config), client_id)))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def poll(app, token: str, after: str = ""):
    return app.test_client().get(f"/oauth/revocations?after={after}", headers={"Authorization": f"Bearer {token}"})


def claims_of(app, token: str) -> dict:
    return jwt.decode(token, KeySet.import_key_set(app.test_client().get("/jwks.json").get_json())).claims


def person_tokens(app, browser: Browser) -> dict:
    client_id, _ = register(app, client_type="public", audiences=["xsn:licenses"])
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge, scope="openid profile offline_access", nonce="n")
    response = app.test_client().post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
        "client_id": client_id})
    assert response.status_code == 200
    return {"client_id": client_id, **response.get_json()}


def test_the_feed_needs_a_token_with_its_scope(app):
    assert app.test_client().get("/oauth/revocations").status_code == 401
    other = client_token(app, "xsn-licenses")
    assert poll(app, other).status_code in (401, 403)  # not for identity, or without the scope
    gateway = client_token(app, "xsn-gateway")
    answer = poll(app, gateway)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert set(body) == {"cursor", "tokens", "sessions"} and body["tokens"] == [] and body["sessions"] == []
    assert isinstance(body["cursor"], str) and body["cursor"]


def test_a_revoked_access_token_is_listed_once_and_the_cursor_moves_on(app):
    gateway = client_token(app, "xsn-gateway")
    start = poll(app, gateway).get_json()["cursor"]
    victim = client_token(app, "xsn-licenses")
    secret = demo_secret(load_kek(app.config), "xsn-licenses")
    revoked = app.test_client().post("/oauth/revoke", data={"token": victim}, auth=("xsn-licenses", secret))
    assert revoked.status_code == 200
    claims = claims_of(app, victim)
    body = poll(app, gateway, start).get_json()
    assert body["tokens"] == [{"jti": claims["jti"], "exp": claims["exp"]}]
    assert poll(app, gateway).get_json()["tokens"] == body["tokens"]  # empty cursor: all still unexpired
    assert body["cursor"] != start


def test_cursor_skips_what_was_seen_beyond_the_overlap(app):
    from datetime import timedelta

    from common.db import utcnow

    with app.app_context(), get_db(app).session() as session:
        revocations.revoke_access_jti(session, "old-jti", utcnow() + timedelta(minutes=5))
        session.commit()
        first = revocations.feed(session, "")
        assert [t["jti"] for t in first["tokens"]] == ["old-jti"]
        later = revocations.feed(session, first["cursor"], now=utcnow() + revocations.CURSOR_OVERLAP * 2)
        # Within the overlap an item may repeat; past it, the cursor has moved beyond it.
        cursor_time = revocations._decode_cursor(first["cursor"])
        assert cursor_time is not None
        assert later["cursor"] == first["cursor"]
        revocations.revoke_access_jti(session, "new-jti", utcnow() + timedelta(minutes=5))
        session.commit()
        assert "new-jti" in [t["jti"] for t in revocations.feed(session, first["cursor"])["tokens"]]
        assert revocations.feed(session, "garbage!")["tokens"]  # unreadable cursor: everything (safe side)


def test_tokens_issued_in_a_login_session_carry_sid_and_die_with_it(app):
    browser = Browser(app)
    browser.login(LI)
    issued = person_tokens(app, browser)
    claims = claims_of(app, issued["access_token"])
    assert claims["sid"] and claims_of(app, issued["id_token"])["sid"] == claims["sid"]
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    assert app.test_client().get("/oauth/userinfo", headers=bearer).status_code == 200

    gateway = client_token(app, "xsn-gateway")
    assert "sid" not in claims_of(app, gateway)  # no person, no session
    # Sign out everywhere (the account API), as the person.
    with app.app_context(), get_db(app).session() as session:
        from identity.models import Person
        from identity.oauth.login_sessions import revoke_all_login_sessions

        person = session.get(Person, claims["sub"])
        assert revoke_all_login_sessions(session, person) == 1
        session.commit()
    body = poll(app, gateway).get_json()
    assert [s["sid"] for s in body["sessions"]] == [claims["sid"]]
    assert abs(body["sessions"][0]["revoked_at"] - time.time()) < 60
    # identity itself refuses the session's access token, and its refresh token is dead.
    assert app.test_client().get("/oauth/userinfo", headers=bearer).status_code == 401
    refreshed = app.test_client().post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"], "client_id": issued["client_id"]})
    assert refreshed.status_code == 400
    assert claims["jti"] in [t["jti"] for t in body["tokens"]]


def test_refresh_token_reuse_revokes_the_family_s_access_tokens_in_the_feed(app):
    browser = Browser(app)
    browser.login(LI)
    issued = person_tokens(app, browser)
    first = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"], "client_id": issued["client_id"]}
    rotated = app.test_client().post("/oauth/token", data=first)
    assert rotated.status_code == 200
    assert app.test_client().post("/oauth/token", data=first).status_code == 400  # reuse: the family dies
    jtis = {t["jti"] for t in poll(app, client_token(app, "xsn-gateway")).get_json()["tokens"]}
    assert claims_of(app, issued["access_token"])["jti"] in jtis
    assert claims_of(app, rotated.get_json()["access_token"])["jti"] in jtis


def test_logout_lists_the_session(app):
    browser = Browser(app)
    browser.login(LI)
    issued = person_tokens(app, browser)
    sid = claims_of(app, issued["access_token"])["sid"]
    response = browser.client.get(f"/oauth/logout?id_token_hint={issued['id_token']}")
    assert response.status_code == 200
    assert sid in [s["sid"] for s in poll(app, client_token(app, "xsn-gateway")).get_json()["sessions"]]


def test_items_are_published_only_after_commit(app):
    published: list[dict] = []
    # A factory of its own: with REDIS_URL set (CI), the app installed its Redis publisher on its
    # own factory, which would take the items first.
    factory = sessionmaker(get_db(app).engine, expire_on_commit=False)
    revocations.install_publisher(factory, published.extend)
    from datetime import timedelta

    from common.db import utcnow

    with factory() as session:
        revocations.revoke_access_jti(session, "rolled-back", utcnow() + timedelta(minutes=5))
        session.rollback()
        assert published == []
        revocations.revoke_access_jti(session, "kept", utcnow() + timedelta(minutes=5))
        assert published == []
        session.commit()
    assert [item["jti"] for item in published] == ["kept"] and published[0]["kind"] == "token"


@pytest.mark.services
def test_items_reach_redis(app, redis_url):
    import redis

    from common.db import utcnow

    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe(revocations.CHANNEL)
    pubsub.get_message(timeout=2)  # the subscribe confirmation
    revocations.install_publisher(get_db(app).sessionmaker, revocations.redis_publisher(redis_url))
    from datetime import timedelta

    with get_db(app).sessionmaker() as session:
        revocations.revoke_access_jti(session, "via-redis", utcnow() + timedelta(minutes=5))
        session.commit()
    message = pubsub.get_message(timeout=5)
    assert message and json.loads(message["data"])["jti"] == "via-redis"


def test_a_failed_publish_is_logged_by_its_exception_type_not_its_message(monkeypatch):
    import redis
    from structlog.testing import capture_logs

    def refuse(*_args):
        raise redis.ConnectionError("redis://:s3cret@cache:6379 refused")

    monkeypatch.setattr(redis.Redis, "publish", refuse)
    publish = revocations.redis_publisher("redis://127.0.0.1:1/0")
    with capture_logs() as captured:
        publish([{"jti": "t1"}])
    assert [(e["event"], e["error_type"], e["items"]) for e in captured] == [
        ("revocation_publish_failed", "ConnectionError", 1)]
    assert "s3cret" not in repr(captured)
