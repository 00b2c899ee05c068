"""Signing keys kept encrypted at rest (SM4-GCM under a key-encryption key).

Each service stores its own keys (token-signing, seal, log) in its own ``signing_keys``
table, defined by mixing :class:`SigningKeyMixin` into the service's declarative base. A key
has a key id, a purpose, an algorithm (SM2, ES256, RS256) and a status:

- ``active`` signs;
- ``next`` is already published (e.g. in a JWKS) but does not sign yet, so that verifiers
  which cached the published set since the last rotation know the key before it is used;
- ``retired`` no longer signs; its public part stays so that what it signed stays verifiable.

Decrypting a private key costs more than most signatures, so :meth:`KeyStore.private_key`
keeps decrypted keys per process (:data:`_DECRYPTED`, keyed by KEK and kid: a kid's key never
changes, so the cache never goes stale).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from common.config import local_secret
from common.crypto.gm import SM2PrivateKey, SM2PublicKey, sm4_gcm_decrypt, sm4_gcm_encrypt
from common.db import UTCDateTime, utcnow
from common.errors import Problem

SM2 = "SM2"
ES256 = "ES256"
RS256 = "RS256"
ALGORITHMS = (SM2, ES256, RS256)
ACTIVE, NEXT, RETIRED = "active", "next", "retired"

# (sha256(kek), kid) -> decrypted private key, for the life of the process.
_DECRYPTED: dict[tuple[bytes, str], Any] = {}
_DECRYPTED_LOCK = threading.Lock()


class KeyStoreError(Problem):
    status, code, title = 500, "key_store_error", "Key store error"


class SigningKeyMixin:
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(64), index=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    public_pem: Mapped[str] = mapped_column(Text)
    encrypted_private: Mapped[str] = mapped_column(Text)  # base64(nonce || ct || tag)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


def load_kek(config: dict[str, Any]) -> bytes:
    """The 16-byte SM4 key-encryption key.

    Production must set ``XSN_KEK`` (fail closed); the embedded setup generates one under
    ``var/`` on first start so a second ``make run`` can still read its keys.
    """
    value = config.get("KEK")
    if value:
        try:
            kek = bytes.fromhex(str(value))
        except ValueError as exc:
            raise KeyStoreError("XSN_KEK is not hex", code="kek_invalid") from exc
        if len(kek) != 16:
            raise KeyStoreError("XSN_KEK must be 16 bytes (32 hex digits)", code="kek_invalid")
        return kek
    if config.get("ENV") == "production":
        raise KeyStoreError("XSN_KEK must be set in production", code="kek_missing")
    return local_secret(config, "kek", 16)


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of a public JWK (EC or RSA), used as its ``kid``."""
    names = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    members = {k: jwk[k] for k in names}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _b64url_int(value: int, length: int | None = None) -> str:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return base64.urlsafe_b64encode(value.to_bytes(length, "big")).rstrip(b"=").decode()


def es256_public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _b64url_int(numbers.x, 32), "y": _b64url_int(numbers.y, 32)}


def rs256_public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "e": _b64url_int(numbers.e), "n": _b64url_int(numbers.n)}


def public_jwk(row: SigningKeyMixin) -> dict[str, str]:
    """The JWK of an ES256 or RS256 key row, with ``kid``, ``use`` and ``alg``."""
    public = serialization.load_pem_public_key(row.public_pem.encode())
    jwk = es256_public_jwk(public) if row.algorithm == ES256 else rs256_public_jwk(public)
    return {**jwk, "kid": row.kid, "use": "sig", "alg": row.algorithm}


def new_private_key(algorithm: str):
    """A fresh private key (the one place keys are generated; tests may hand out pre-made ones)."""
    if algorithm == SM2:
        return SM2PrivateKey.generate()
    if algorithm == ES256:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class KeyStore:
    """Keys of one service. ``model`` is that service's ``SigningKeyMixin`` table."""

    def __init__(self, session: Session, model: type[SigningKeyMixin], kek: bytes) -> None:
        self.session = session
        self.model = model
        self.kek = kek

    # -- creating ---------------------------------------------------------------------
    def generate(self, purpose: str, algorithm: str = SM2, *, status: str = ACTIVE) -> SigningKeyMixin:
        """Create a key (flushed); the caller commits."""
        if algorithm not in ALGORITHMS:
            raise KeyStoreError(f"unsupported algorithm {algorithm}", code="key_algorithm_unsupported")
        private = new_private_key(algorithm)
        if algorithm == SM2:
            private_pem = private.to_pem()
            public_pem = private.public_key().to_pem()
            kid = private.public_key().fingerprint()[:32]
        else:
            private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())
            public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
            jwk = (es256_public_jwk if algorithm == ES256 else rs256_public_jwk)(private.public_key())
            kid = jwk_thumbprint(jwk)
        # The kid is bound as associated data: a ciphertext moved to another row fails.
        sealed = sm4_gcm_encrypt(self.kek, private_pem, kid.encode())
        row = self.model(kid=kid, purpose=purpose, algorithm=algorithm, status=status,
                         public_pem=public_pem.decode(),
                         encrypted_private=base64.b64encode(sealed).decode())
        self.session.add(row)
        self.session.flush()
        return row

    def ensure_next(self, purpose: str, algorithm: str) -> None:
        """Make sure ``purpose`` has an active key and a published ``next`` one (flushed)."""
        if not self._rows(purpose, ACTIVE):
            self.generate(purpose, algorithm)
        if not self._rows(purpose, NEXT):
            self.generate(purpose, algorithm, status=NEXT)

    def rotate(self, purpose: str, algorithm: str | None = None) -> SigningKeyMixin:
        """Retire the active key(s) of ``purpose`` and return the new active one; the caller commits.

        When a ``next`` key is published it becomes active and a new ``next`` is made, so no
        signature is ever made by a key verifiers could not have seen; otherwise a new key is
        generated and is active at once.
        """
        current = self.active(purpose, create=False)
        algorithm = algorithm or (current.algorithm if current else SM2)
        for row in self._rows(purpose, ACTIVE):
            row.status = RETIRED
            row.retired_at = utcnow()
        waiting = self._rows(purpose, NEXT)
        if not waiting:
            return self.generate(purpose, algorithm)
        promoted = waiting[0]
        promoted.status = ACTIVE
        self.session.flush()
        self.generate(purpose, algorithm, status=NEXT)
        return promoted

    # -- reading ----------------------------------------------------------------------
    def _rows(self, purpose: str, status: str | None = None) -> list[SigningKeyMixin]:
        query = select(self.model).where(self.model.purpose == purpose)
        if status:
            query = query.where(self.model.status == status)
        return list(self.session.scalars(query.order_by(self.model.created_at)))

    def active(self, purpose: str, algorithm: str = SM2, *, create: bool = True) -> SigningKeyMixin | None:
        """The newest active key of ``purpose``, generated on first use when ``create``."""
        rows = self._rows(purpose, ACTIVE)
        if rows:
            return rows[-1]
        if not create:
            return None
        return self.generate(purpose, algorithm)

    def get(self, kid: str) -> SigningKeyMixin:
        row = self.session.get(self.model, kid)
        if row is None:
            raise KeyStoreError(f"unknown key {kid}", code="key_not_found", status=404)
        return row

    def public_keys(self, purpose: str) -> list[SigningKeyMixin]:
        """Active, next and retired keys: verifiers need the retired ones for older signatures."""
        return self._rows(purpose)

    def private_key(self, kid: str) -> SM2PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        """The decrypted private key of ``kid`` (cached for the life of the process).

        :raise KeyStoreError: unknown kid (404), or the KEK does not open it.
        """
        cache_key = (hashlib.sha256(self.kek).digest(), kid)
        key = _DECRYPTED.get(cache_key)
        if key is not None:
            return key
        row = self.get(kid)
        pem = sm4_gcm_decrypt(self.kek, base64.b64decode(row.encrypted_private), row.kid.encode())
        key = SM2PrivateKey.from_pem(pem) if row.algorithm == SM2 else serialization.load_pem_private_key(pem, None)
        with _DECRYPTED_LOCK:
            _DECRYPTED[cache_key] = key
        return key

    @staticmethod
    def public_key(row: SigningKeyMixin) -> SM2PublicKey | ec.EllipticCurvePublicKey:
        if row.algorithm == SM2:
            return SM2PublicKey.from_pem(row.public_pem.encode())
        return serialization.load_pem_public_key(row.public_pem.encode())
