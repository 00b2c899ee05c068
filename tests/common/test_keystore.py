"""Signing keys are kept encrypted, rotate, and stay verifiable after retirement."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import String, create_engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from common.crypto.gm import GMError, SM2PrivateKey
from common.crypto.keystore import ES256, RETIRED, SM2, KeyStore, KeyStoreError, SigningKeyMixin, load_kek
from common.db import make_base

Base = make_base()


class Key(SigningKeyMixin, Base):
    __tablename__ = "signing_keys"


class Other(Base):
    __tablename__ = "other"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)


KEK = bytes(range(16))


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session


def test_sm2_key_is_encrypted_at_rest_and_signs(session):
    store = KeyStore(session, Key, KEK)
    row = store.active("log")
    session.commit()
    assert row.algorithm == SM2
    assert b"PRIVATE KEY" not in base64.b64decode(row.encrypted_private)
    private = store.private_key(row.kid)
    assert isinstance(private, SM2PrivateKey)
    signature = private.sign(b"checkpoint")
    KeyStore.public_key(row).verify(b"checkpoint", signature)


def test_es256_key_has_thumbprint_kid(session):
    store = KeyStore(session, Key, KEK)
    row = store.generate("token-signing", ES256)
    assert len(row.kid) == 43  # base64url SHA-256, RFC 7638
    assert store.private_key(row.kid).public_key().public_numbers().curve.name == "secp256r1"


def test_rotation_retires_but_keeps_public_key(session):
    store = KeyStore(session, Key, KEK)
    first = store.active("seal:1")
    second = store.rotate("seal:1")
    session.commit()
    assert first.kid != second.kid
    assert store.active("seal:1").kid == second.kid
    assert session.get(Key, first.kid).status == RETIRED
    assert {k.kid for k in store.public_keys("seal:1")} == {first.kid, second.kid}


def test_wrong_kek_or_moved_ciphertext_fails_closed(session):
    store = KeyStore(session, Key, KEK)
    a = store.generate("a")
    b = store.generate("b")
    with pytest.raises(GMError):
        KeyStore(session, Key, bytes(16)).private_key(a.kid)
    b.encrypted_private = a.encrypted_private  # bound to a's kid as associated data
    with pytest.raises(GMError):
        store.private_key(b.kid)


def test_unknown_kid(session):
    with pytest.raises(KeyStoreError) as info:
        KeyStore(session, Key, KEK).get("nope")
    assert info.value.code == "key_not_found"


def test_kek_from_config_file_and_production_rule(tmp_path):
    assert load_kek({"KEK": "00" * 16}) == bytes(16)
    with pytest.raises(KeyStoreError):
        load_kek({"KEK": "abcd"})
    with pytest.raises(KeyStoreError) as info:
        load_kek({"KEK": None, "ENV": "production", "VAR_DIR": str(tmp_path)})
    assert info.value.code == "kek_missing"
    generated = load_kek({"KEK": None, "ENV": "embedded", "VAR_DIR": str(tmp_path)})
    assert load_kek({"KEK": None, "ENV": "embedded", "VAR_DIR": str(tmp_path)}) == generated
    assert (tmp_path / "kek.hex").stat().st_mode & 0o077 == 0
