"""Interoperability with the OpenSSL 3 command line (an independent SM2/SM3 implementation).

OpenSSL 3 does not apply the default SM2 ID unless told, so every sign/verify
passes ``distid:1234567812345678``.
"""

import shutil
import subprocess

import pytest
from asn1crypto import pem as asn1_pem

from common.crypto.gm import InvalidSignature, SM2PrivateKey, SM2PublicKey, sm3

OPENSSL = shutil.which("openssl")
DISTID = "distid:1234567812345678"

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")


def openssl(*args: str, input: bytes | None = None) -> bytes:
    done = subprocess.run([OPENSSL, *args], input=input, capture_output=True, check=False, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def openssl_verify(pub_pem: bytes, message: bytes, signature: bytes, tmp_path) -> bool:
    (tmp_path / "pub.pem").write_bytes(pub_pem)
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig.der").write_bytes(signature)
    done = subprocess.run(
        [
            OPENSSL,
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(tmp_path / "pub.pem"),
            "-rawin",
            "-digest",
            "sm3",
            "-in",
            str(tmp_path / "msg"),
            "-sigfile",
            str(tmp_path / "sig.der"),
            "-pkeyopt",
            DISTID,
        ],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return done.returncode == 0 and b"Signature Verified Successfully" in done.stdout


def openssl_sign(key_pem: bytes, message: bytes, tmp_path) -> bytes:
    (tmp_path / "k.pem").write_bytes(key_pem)
    (tmp_path / "msg").write_bytes(message)
    openssl(
        "pkeyutl",
        "-sign",
        "-inkey",
        str(tmp_path / "k.pem"),
        "-rawin",
        "-digest",
        "sm3",
        "-in",
        str(tmp_path / "msg"),
        "-out",
        str(tmp_path / "sig.der"),
        "-pkeyopt",
        DISTID,
    )
    return (tmp_path / "sig.der").read_bytes()


@pytest.fixture(scope="module")
def openssl_key_pem(tmp_path_factory):
    path = tmp_path_factory.mktemp("openssl") / "k.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", str(path))
    return path.read_bytes()


def test_openssl_signs_we_verify(backend, openssl_key_pem, tmp_path):
    key = SM2PrivateKey.from_pem(openssl_key_pem)
    message = b"licence 1.2.156.3005.2 payload\n"
    signature = openssl_sign(openssl_key_pem, message, tmp_path)
    key.public_key().verify(message, signature)
    with pytest.raises(InvalidSignature):
        key.public_key().verify(message[:-1], signature)


def test_we_sign_openssl_verifies(backend, tmp_path):
    key = SM2PrivateKey.generate()
    message = b"seal TBS_Sign bytes"
    for signature in (key.sign(message), key.sign(message)):
        assert openssl_verify(key.public_key().to_pem(), message, signature, tmp_path)
    assert not openssl_verify(key.public_key().to_pem(), message + b"!", key.sign(message), tmp_path)


def test_openssl_reads_our_private_key(backend, tmp_path):
    key = SM2PrivateKey.generate()
    signature = openssl_sign(key.to_pem(), b"m", tmp_path)
    key.public_key().verify(b"m", signature)


def test_openssl_key_encodings_match_ours(openssl_key_pem):
    key = SM2PrivateKey.from_pem(openssl_key_pem)
    # Byte-identical PKCS#8 and SPKI: our encoders write what OpenSSL writes.
    _, _, pkcs8 = asn1_pem.unarmor(openssl_key_pem)
    assert key.to_der() == pkcs8
    assert key.to_pem() == openssl_key_pem
    assert key.public_key().to_der() == openssl("pkey", "-pubout", "-outform", "DER", input=openssl_key_pem)
    assert key.public_key() == SM2PublicKey.from_pem(openssl("pkey", "-pubout", input=openssl_key_pem))


def test_openssl_sec1_keys_load(backend, openssl_key_pem):
    expected = SM2PrivateKey.from_pem(openssl_key_pem).private_int
    # OpenSSL 3 writes DER keys as SEC1 with curve parameters; OpenSSL 1.1 and
    # Tongsuo wrap the same bytes as "EC PRIVATE KEY" PEM.
    sec1_der = openssl("pkey", "-outform", "DER", input=openssl_key_pem)
    assert SM2PrivateKey.from_der(sec1_der).private_int == expected
    for label in ("EC PRIVATE KEY", "SM2 PRIVATE KEY"):
        assert SM2PrivateKey.from_pem(asn1_pem.armor(label, sec1_der)).private_int == expected


def test_openssl_ecparam_genkey_output_loads(backend):
    pem = openssl("ecparam", "-name", "SM2", "-genkey")
    assert b"PARAMETERS-----" in pem
    key = SM2PrivateKey.from_pem(pem)
    assert key.public_key().to_der() == openssl("pkey", "-pubout", "-outform", "DER", input=pem)


@pytest.mark.parametrize("size", [0, 3, 1024, 100_000])
def test_sm3_matches_openssl_dgst(size, tmp_path):
    data = bytes((i * 7 + 3) % 256 for i in range(size))
    path = tmp_path / "blob"
    path.write_bytes(data)
    out = openssl("dgst", "-sm3", "-r", str(path)).decode()
    assert out.split()[0] == sm3(data).hex()
