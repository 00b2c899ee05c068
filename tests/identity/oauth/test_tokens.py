"""Signing keys: rotation publishes the next key before use and keeps retired keys published."""

from __future__ import annotations

from datetime import timedelta

from joserfc import jwt
from joserfc.jwk import KeySet

from common.db import get_db, utcnow
from identity.oauth import tokens
from identity.oauth.context import state


def test_rotation_uses_only_keys_already_published(app):
    with app.app_context(), get_db(app).session() as session:
        kek = state(app).kek
        tokens.ensure_keys(session, kek)
        session.commit()
        before = {k["kid"] for k in tokens.jwks_document(session)["keys"]}
        next_kid = tokens.key_rows(session, "ES256", tokens.NEXT)[0].kid
        old_kid = tokens.key_rows(session, "ES256", tokens.ACTIVE)[0].kid
        assert next_kid in before  # published while not yet used

        promoted = tokens.rotate_keys(session, kek, "ES256")
        session.commit()
        assert promoted.kid == next_kid
        after = {k["kid"] for k in tokens.jwks_document(session)["keys"]}
        assert old_kid in after and next_kid in after  # the retired key still verifies old tokens
        assert len(after) == len(before) + 1  # plus the new next key

        cache = tokens.SigningKeys(kek, ttl=0)
        kid, _ = cache.signing_key(session, "ES256")
        assert kid == next_kid
        token = tokens.sign(cache, session, {"sub": "x", "exp": 2_000_000_000})
        assert jwt.decode(token, KeySet.import_key_set(tokens.jwks_document(session))).header["kid"] == next_kid

        # Long after retirement the old key leaves the JWKS.
        tokens.key_rows(session, "ES256", tokens.RETIRED)[0].retired_at = utcnow() - timedelta(days=3)
        session.flush()
        assert old_kid not in {k["kid"] for k in tokens.jwks_document(session)["keys"]}


def test_key_cache_decrypts_a_key_once_and_follows_rotation_after_ttl(app):
    with app.app_context(), get_db(app).session() as session:
        kek = state(app).kek
        tokens.ensure_keys(session, kek)
        session.commit()
        cache = tokens.SigningKeys(kek, ttl=3600)
        kid, key = cache.signing_key(session, "ES256")
        assert cache.signing_key(session, "ES256")[1] is key  # cached object, no decrypt per call
        tokens.rotate_keys(session, kek, "ES256")
        session.commit()
        assert cache.signing_key(session, "ES256")[0] == kid  # until the TTL passes
        cache.forget_active()
        assert cache.signing_key(session, "ES256")[0] != kid


def test_private_keys_are_sealed_at_rest(app):
    from identity.oauth.models import SigningKey

    with app.app_context(), get_db(app).session() as session:
        tokens.ensure_keys(session, state(app).kek)
        for row in session.query(SigningKey).all():
            assert "PRIVATE KEY" not in row.encrypted_private and "BEGIN" in row.public_pem


def test_acr_values_parse():
    assert tokens.acr_level("urn:xsn:acr:L3") == 3 and tokens.acr_level("L2") == 2 and tokens.acr_level("4") == 4
    assert tokens.acr_level("urn:other:gold") is None and tokens.acr_level("5") is None
