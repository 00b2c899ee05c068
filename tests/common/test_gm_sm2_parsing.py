"""What SM2's parsers refuse, on both backends: malformed signatures (DER or raw), keys on
another curve, encrypted, off the curve or not keys at all, each with ``InvalidSignature`` or
``InvalidKey`` and nothing else; the fast canonical-DER decoder agrees with a full asn1crypto
parse."""

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as crypto_ec
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from common.crypto.gm import (
    SM2_SPKI_DER_PREFIX,
    GMError,
    InvalidKey,
    InvalidSignature,
    SM2PrivateKey,
    SM2PublicKey,
    der_to_raw_signature,
    raw_to_der_signature,
)
from tests.common.sm2_annex_a import MSG, PA, D, N, R, S, der_signature


def _int(v: bytes) -> bytes:
    return b"\x02" + bytes([len(v)]) + v


def _seq(body: bytes) -> bytes:
    return b"\x30" + bytes([len(body)]) + body


R_BYTES = R.to_bytes(32, "big")
S_BYTES = S.to_bytes(32, "big")
GOOD = _seq(_int(b"\x00" + R_BYTES) + _int(b"\x00" + S_BYTES))

MALFORMED_SIGNATURES = {
    "empty": b"",
    "garbage": b"\x01\x02\x03",
    "trailing byte": GOOD + b"\x00",
    "trailing sequence": GOOD + GOOD,
    "wrong outer tag": b"\x31" + GOOD[1:],
    "wrong integer tag": _seq(b"\x04" + _int(b"\x00" + R_BYTES)[1:] + _int(b"\x00" + S_BYTES)),
    "long-form length": b"\x30\x81" + GOOD[1:],
    "padded integer": _seq(_int(b"\x00\x00" + R_BYTES) + _int(b"\x00" + S_BYTES)),
    "missing sign byte (negative r)": _seq(_int(R_BYTES) + _int(b"\x00" + S_BYTES)),
    "negative s": _seq(_int(b"\x00" + R_BYTES) + _int(b"\xff")),
    "r = 0": _seq(_int(b"\x00") + _int(b"\x00" + S_BYTES)),
    "s = 0": _seq(_int(b"\x00" + R_BYTES) + _int(b"\x00")),
    "r = n": der_signature(1, 1).replace(b"\x02\x01\x01", _int(b"\x00" + N.to_bytes(32, "big")), 1),
    "s = n + 1": _seq(_int(b"\x00" + R_BYTES) + _int(b"\x00" + (N + 1).to_bytes(32, "big"))),
    "oversized r": _seq(_int(b"\x01" + R_BYTES) + _int(b"\x00" + S_BYTES)),
    "one integer": _seq(_int(b"\x00" + R_BYTES)),
    "three integers": _seq(_int(b"\x00" + R_BYTES) + _int(b"\x00" + S_BYTES) + _int(b"\x01")),
    "raw r = 0": bytes(32) + S_BYTES,
    "raw s = n": R_BYTES + N.to_bytes(32, "big"),
    "raw all ff": b"\xff" * 64,
    "63 bytes": b"\x01" * 63,
}


def test_good_reference_signature_is_accepted():
    SM2PublicKey.from_point(*PA).verify(MSG, GOOD)


@pytest.mark.parametrize("name", list(MALFORMED_SIGNATURES))
def test_malformed_signature_rejected(backend, name):
    pub = SM2PublicKey.from_point(*PA)
    with pytest.raises(InvalidSignature) as info:
        pub.verify(MSG, MALFORMED_SIGNATURES[name])
    assert info.value.code == "sm2_invalid_signature"
    assert isinstance(info.value, GMError)


@pytest.mark.parametrize("name", [n for n in MALFORMED_SIGNATURES if not n.startswith("raw")])
def test_malformed_der_rejected_by_converter(name):
    with pytest.raises(InvalidSignature):
        der_to_raw_signature(MALFORMED_SIGNATURES[name])


def test_non_bytes_signature_rejected():
    with pytest.raises(InvalidSignature):
        SM2PublicKey.from_point(*PA).verify(MSG, GOOD.hex())
    with pytest.raises(InvalidSignature):
        raw_to_der_signature(bytes(64))


def _p256_keys():
    key = crypto_ec.generate_private_key(crypto_ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return spki, pkcs8


def test_wrong_curve_keys_rejected():
    spki, pkcs8 = _p256_keys()
    with pytest.raises(InvalidKey, match="curve"):
        SM2PublicKey.from_der(spki)
    with pytest.raises(InvalidKey, match="curve"):
        SM2PrivateKey.from_pem(pkcs8)
    rsa_spki = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidKey, match="not an EC key"):
        SM2PublicKey.from_der(rsa_spki)


def test_encrypted_private_key_rejected():
    key = crypto_ec.generate_private_key(crypto_ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(InvalidKey, match="encrypted"):
        SM2PrivateKey.from_pem(pem)


GOOD_SPKI = SM2PublicKey.from_point(*PA).to_der()
BAD_PUBLIC_INPUTS = {
    "garbage": b"\x00\x01garbage",
    "truncated spki": GOOD_SPKI[:-1],
    "trailing byte": GOOD_SPKI + b"\x00",
    "compressed point": SM2_SPKI_DER_PREFIX[:-3] + b"\x03\x22\x00\x02" + GOOD_SPKI[-64:-32],
    "point at infinity": SM2_SPKI_DER_PREFIX[:-3] + b"\x03\x02\x00\x00",
    "off-curve point": GOOD_SPKI[:-1] + bytes([GOOD_SPKI[-1] ^ 1]),
    "x >= p": SM2_SPKI_DER_PREFIX + b"\x04" + b"\xff" * 64,
}


@pytest.mark.parametrize("name", list(BAD_PUBLIC_INPUTS))
def test_bad_public_key_der_rejected(name):
    with pytest.raises(InvalidKey) as info:
        SM2PublicKey.from_der(BAD_PUBLIC_INPUTS[name])
    assert info.value.code == "gm_invalid_key"


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"not a pem at all",
        b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
    ],
)
def test_garbage_pem_rejected(pem):
    with pytest.raises(InvalidKey):
        SM2PublicKey.from_pem(pem)
    with pytest.raises(InvalidKey):
        SM2PrivateKey.from_pem(pem)


@pytest.mark.parametrize("d", [0, -1, N - 1, N, 2**256, True])
def test_private_scalar_out_of_range(d):
    with pytest.raises(InvalidKey):
        SM2PrivateKey.from_int(d)


def test_private_key_with_mismatched_public_point_rejected(backend):
    other = SM2PublicKey.from_point(*PA)
    forged = asn1_keys.PrivateKeyInfo.load(SM2PrivateKey.from_int(D + 1).to_der())
    inner = asn1_keys.ECPrivateKey.load(forged["private_key"].parsed.dump())
    inner["public_key"] = other.uncompressed()
    forged["private_key"] = inner
    with pytest.raises(InvalidKey, match="does not match"):
        SM2PrivateKey.from_der(forged.dump())


def test_bad_private_der_rejected():
    for der in (b"", b"\x30\x00", b"\x30\x03\x02\x01\x00", SM2PrivateKey.from_int(D).to_der() + b"\x00"):
        with pytest.raises(InvalidKey):
            SM2PrivateKey.from_der(der)


# -- the fast canonical-DER path agrees with a full asn1crypto parse --------


def _reference_decode(der: bytes):
    try:
        parsed = asn1_algos.DSASignature.load(der, strict=True)
        r, s = parsed["r"].native, parsed["s"].native
    except Exception:
        return None
    if not (1 <= r < N and 1 <= s < N):
        return None
    if asn1_algos.DSASignature({"r": r, "s": s}).dump() != der:
        return None
    return r, s


@settings(max_examples=300, deadline=None)
@given(
    r=st.integers(1, N - 1),
    s=st.integers(1, N - 1),
    edits=st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0, 80), st.integers(0, 255))),
)
@pytest.mark.slow
def test_signature_decoder_matches_asn1crypto(r, s, edits):
    der = bytearray(der_signature(r, s))
    for op, pos, value in edits:
        pos %= len(der) + 1
        if op == "insert":
            der.insert(pos, value)
        elif der and pos < len(der):
            if op == "flip":
                der[pos] ^= value or 1
            else:
                del der[pos]
    der = bytes(der)
    expected = _reference_decode(der)
    if expected is None:
        with pytest.raises(InvalidSignature):
            der_to_raw_signature(der)
    else:
        assert der_to_raw_signature(der) == expected[0].to_bytes(32, "big") + expected[1].to_bytes(32, "big")


@settings(max_examples=200, deadline=None)
@given(signature=st.binary(max_size=100))
def test_arbitrary_bytes_only_ever_raise_invalid_signature(signature):
    pub = SM2PublicKey.from_point(*PA)
    with pytest.raises(InvalidSignature):
        pub.verify(MSG, signature)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=120))
def test_arbitrary_key_bytes_only_ever_raise_invalid_key(data):
    for load in (SM2PublicKey.from_der, SM2PrivateKey.from_der, SM2PublicKey.from_pem, SM2PrivateKey.from_pem):
        with pytest.raises(InvalidKey):
            load(data)


def test_every_single_byte_flip_of_a_key_is_rejected_or_harmless():
    key = SM2PrivateKey.from_int(D)
    for der, load in ((key.to_der(), SM2PrivateKey.from_der), (key.public_key().to_der(), SM2PublicKey.from_der)):
        for i in range(len(der)):
            for mask in (0x01, 0x80):
                tampered = bytearray(der)
                tampered[i] ^= mask
                try:
                    loaded = load(bytes(tampered))
                except InvalidKey:
                    continue
                # A flip that still parses must not change the key material.
                assert loaded.to_der() == der
