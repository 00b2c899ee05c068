"""SM2 signatures on both backends: GB/T 32918 Annex A, round trips, strict parsing."""

import inspect

import pytest
import structlog
from asn1crypto import algos as asn1_algos
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as crypto_ec
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.crypto.gm import (
    DEFAULT_SM2_ID,
    SM2_SPKI_DER_PREFIX,
    GMError,
    InvalidKey,
    InvalidSignature,
    SM2PrivateKey,
    SM2PublicKey,
    _backend,
    _curve,
    _gmssl_backend,
    backend_name,
    compute_za,
    der_to_raw_signature,
    raw_to_der_signature,
    sm2_e,
    sm3,
    use_backend,
)

# GB/T 32918.5 / GM/T 0003.5 Annex A, recommended curve, default ID.
MSG = b"message digest"
D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
PA = (
    0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020,
    0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13,
)
ZA = "b2e14c5c79c6df5b85f4fe7ed8db7a262b9da7e07ccb0ea9f4747b8ccda8a4f3"
E = "f0b43e94ba45accaace692ed534382eb17e6ab5a19ce7b31f4486fdfc0d28640"
K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
N = _curve.N

BACKENDS = ["tongsuopy", "gmssl"]
# gmssl is pure Python (~10 ms per operation): keep generated cases few.
FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=BACKENDS)
def backend(request):
    use_backend(request.param)
    yield request.param
    use_backend(None)


@pytest.fixture(scope="module")
def key_pair():
    use_backend("tongsuopy")
    key = SM2PrivateKey.generate()
    use_backend(None)
    return key, key.public_key()


def _der(r: int, s: int) -> bytes:
    return raw_to_der_signature(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


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
    pub.verify(MSG, _der(R, S))
    pub.verify(MSG, R.to_bytes(32, "big") + S.to_bytes(32, "big"))
    with pytest.raises(InvalidSignature):
        pub.verify(b"message digesT", _der(R, S))


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


# -- strict parsing -------------------------------------------------------


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
    "r = n": _der(1, 1).replace(b"\x02\x01\x01", _int(b"\x00" + N.to_bytes(32, "big")), 1),
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


# -- backend selection ----------------------------------------------------


def test_backend_forced_by_environment(monkeypatch):
    monkeypatch.setenv("XSN_GM_BACKEND", "gmssl")
    use_backend(None)
    try:
        assert backend_name() == "gmssl"
        monkeypatch.setenv("XSN_GM_BACKEND", "tongsuopy")
        use_backend(None)
        assert backend_name() == "tongsuopy"
        monkeypatch.setenv("XSN_GM_BACKEND", "openssl")
        use_backend(None)
        with pytest.raises(GMError) as info:
            backend_name()
        assert info.value.code == "gm_backend_unavailable"
    finally:
        monkeypatch.delenv("XSN_GM_BACKEND")
        use_backend(None)
    assert backend_name() == "tongsuopy"


def test_gmssl_warning_is_logged_once(monkeypatch):
    monkeypatch.setattr(_backend, "_gmssl_warned", False)
    try:
        with structlog.testing.capture_logs() as logs:
            use_backend("gmssl")
            use_backend("gmssl")
    finally:
        use_backend(None)
    assert [entry["event"] for entry in logs] == ["gm_backend_gmssl"]
    assert logs[0]["log_level"] == "warning"


def test_fallback_to_gmssl_when_tongsuopy_missing(monkeypatch):
    real_load = _backend._load

    def load(name):
        if name == "tongsuopy":
            raise GMError("no wheel", code="gm_backend_unavailable")
        return real_load(name)

    monkeypatch.setattr(_backend, "_load", load)
    monkeypatch.delenv("XSN_GM_BACKEND", raising=False)
    use_backend(None)
    try:
        assert backend_name() == "gmssl"
    finally:
        use_backend(None)


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
    der = bytearray(_der(r, s))
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
