"""SM2 signatures on both backends: GB/T 32918 Annex A, round trips and cross-backend interop,
tampering, the key and signature encodings. What the parsers refuse: ``test_gm_sm2_parsing.py``;
choosing the backend: ``test_gm_backend.py``."""

import inspect

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.crypto.gm import (
    DEFAULT_SM2_ID,
    SM2_SPKI_DER_PREFIX,
    InvalidKey,
    InvalidSignature,
    SM2PrivateKey,
    SM2PublicKey,
    _curve,
    _gmssl_backend,
    compute_za,
    der_to_raw_signature,
    raw_to_der_signature,
    sm2_e,
    sm3,
    use_backend,
)
from tests.common.sm2_annex_a import MSG, PA, ZA, D, E, K, N, R, S, der_signature

# gmssl is pure Python (~10 ms per operation): keep generated cases few.
FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def key_pair():
    use_backend("tongsuopy")
    key = SM2PrivateKey.generate()
    use_backend(None)
    return key, key.public_key()


def _flip(data: bytes, i: int) -> bytes:
    out = bytearray(data)
    out[i] ^= 0x01
    return bytes(out)


# -- Annex A known answers ------------------------------------------------


def test_za_and_e_known_answer():
    pub = SM2PublicKey.from_point(*PA)
    assert compute_za(pub).hex() == ZA
    assert compute_za(pub, DEFAULT_SM2_ID).hex() == ZA
    assert sm2_e(pub, MSG).hex() == E
    # A non-default ID is plain hashing too; check ENTL and ID placement by hand.
    uid = b"ALICE123@YAHOO.COM"
    manual = sm3((len(uid) * 8).to_bytes(2, "big") + uid + _curve.CURVE_ZA_PARAMS + pub.uncompressed()[1:])
    assert compute_za(pub, uid) == manual
    assert sm2_e(pub, MSG, uid) == sm3(manual + MSG)


def test_annex_a_public_key_and_signature(backend):
    key = SM2PrivateKey.from_int(D)
    assert (key.public_key().x, key.public_key().y) == PA
    pub = SM2PublicKey.from_point(*PA)
    pub.verify(MSG, der_signature(R, S))
    pub.verify(MSG, R.to_bytes(32, "big") + S.to_bytes(32, "big"))
    with pytest.raises(InvalidSignature):
        pub.verify(b"message digesT", der_signature(R, S))


def test_gmssl_backend_reproduces_annex_a_signature_from_k():
    rs = _gmssl_backend._sign_with_fixed_k_for_tests(D, *PA, bytes.fromhex(E), K)
    assert rs == (R, S)


def test_public_sign_cannot_take_a_nonce():
    assert list(inspect.signature(SM2PrivateKey.sign).parameters) == ["self", "message", "raw"]


# -- round trips and cross-backend interop --------------------------------


@FEW
@given(message=st.binary(max_size=256))
def test_sign_verify_round_trip(backend, key_pair, message):
    key, pub = key_pair
    sig = key.sign(message)
    pub.verify(message, sig)
    with pytest.raises(InvalidSignature):
        pub.verify(message + b"\x00", sig)


def test_signatures_are_randomised(backend, key_pair):
    key, pub = key_pair
    assert key.sign(b"m") != key.sign(b"m")


@pytest.mark.parametrize(("signer", "verifier"), [("tongsuopy", "gmssl"), ("gmssl", "tongsuopy")])
def test_cross_backend(signer, verifier):
    use_backend(signer)
    try:
        key = SM2PrivateKey.generate()
        signatures = [key.sign(m) for m in (b"", b"a", b"cross-backend " * 20)]
        raw = key.sign(b"raw", raw=True)
        use_backend(verifier)
        for m, sig in zip((b"", b"a", b"cross-backend " * 20), signatures, strict=True):
            key.public_key().verify(m, sig)
        key.public_key().verify(b"raw", raw)
        # The same scalar gives the same public key on the other backend.
        assert SM2PrivateKey.from_int(key.private_int).public_key() == key.public_key()
    finally:
        use_backend(None)


def test_gmssl_handles_x_with_leading_04_digits():
    # gmssl's constructor lstrip("04")s the public key hex; X = 0x04... was
    # silently corrupted. Find such a key cheaply with tongsuopy.
    use_backend("tongsuopy")
    try:
        while True:
            key = SM2PrivateKey.generate()
            if f"{key.public_key().x:064x}".startswith("04"):
                break
        sig = key.sign(b"lstrip")
        use_backend("gmssl")
        key.public_key().verify(b"lstrip", sig)
        key.public_key().verify(b"lstrip", key.sign(b"lstrip"))
    finally:
        use_backend(None)


# -- tampering ------------------------------------------------------------


@pytest.mark.slow
def test_every_tampered_byte_is_rejected(backend, key_pair):
    key, pub = key_pair
    message = b"pay 100"
    der = key.sign(message)
    raw = der_to_raw_signature(der)
    for i in range(len(message)):
        with pytest.raises(InvalidSignature):
            pub.verify(_flip(message, i), der)
    for sig in (der, raw):
        for i in range(len(sig)):
            with pytest.raises(InvalidSignature):
                pub.verify(message, _flip(sig, i))


def test_other_public_key_is_rejected(backend, key_pair):
    key, _ = key_pair
    sig = key.sign(b"m")
    with pytest.raises(InvalidSignature):
        SM2PublicKey.from_point(*PA).verify(b"m", sig)
    # Nudging a coordinate leaves the curve, so the key itself is refused.
    pub = key.public_key()
    with pytest.raises(InvalidKey):
        SM2PublicKey.from_point(pub.x, pub.y ^ 1)
    with pytest.raises(InvalidKey):
        SM2PublicKey.from_uncompressed(_flip(pub.uncompressed(), 5))


# -- encodings ------------------------------------------------------------


def test_raw_signature_form(backend, key_pair):
    key, pub = key_pair
    raw = key.sign(b"m", raw=True)
    assert len(raw) == 64
    pub.verify(b"m", raw)
    der = raw_to_der_signature(raw)
    assert der_to_raw_signature(der) == raw
    pub.verify(b"m", der)


@pytest.mark.parametrize(("r", "s"), [(1, 1), (N - 1, N - 1), (0x7F, 0x80), (2**255, 2**247 - 1)])
def test_der_raw_conversion_edges(r, s):
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = raw_to_der_signature(raw)
    parsed = asn1_algos.DSASignature.load(der)
    assert (parsed["r"].native, parsed["s"].native) == (r, s)
    assert der_to_raw_signature(der) == raw


def test_private_key_round_trips(backend):
    key = SM2PrivateKey.from_int(D)
    for loaded in (SM2PrivateKey.from_pem(key.to_pem()), SM2PrivateKey.from_der(key.to_der())):
        assert loaded.private_int == D
        assert loaded.public_key() == key.public_key()
    assert key.to_pem().startswith(b"-----BEGIN PRIVATE KEY-----")
    info = asn1_keys.PrivateKeyInfo.load(key.to_der())
    assert info["private_key_algorithm"]["parameters"].chosen.dotted == "1.2.156.10197.1.301"
    assert "3945208f" not in repr(key).lower()


def test_sec1_private_key_loads(backend):
    sec1 = asn1_keys.ECPrivateKey(
        {
            "version": "ecPrivkeyVer1",
            "private_key": D,
            "parameters": ("named", "sm2p256v1"),
            "public_key": SM2PublicKey.from_point(*PA).uncompressed(),
        }
    ).dump()
    assert SM2PrivateKey.from_der(sec1).private_int == D
    pem = asn1_pem.armor("EC PRIVATE KEY", sec1)
    assert SM2PrivateKey.from_pem(pem).public_key().x == PA[0]


def test_public_key_round_trips_and_spki_prefix():
    pub = SM2PublicKey.from_point(*PA)
    der = pub.to_der()
    assert der.startswith(SM2_SPKI_DER_PREFIX) and len(der) == 91
    assert der[len(SM2_SPKI_DER_PREFIX) :] == pub.uncompressed()
    assert SM2PublicKey.from_der(der) == pub
    assert SM2PublicKey.from_pem(pub.to_pem()) == pub
    assert SM2PublicKey.from_uncompressed(pub.uncompressed()) == pub
    assert pub.to_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert pub.fingerprint() == sm3(der).hex()
    # The asn1crypto view agrees with the hand-built prefix.
    info = asn1_keys.PublicKeyInfo.load(der)
    assert info["algorithm"]["parameters"].chosen.dotted == "1.2.156.10197.1.301"
