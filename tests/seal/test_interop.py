"""Independent implementations verify our SES_Signature: the OpenSSL 3 CLI and gmssl.

What works with OpenSSL 3.0 (recorded by these tests):
* ``openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -digest sm3 -in tbs.der -sigfile sig.der
  -pkeyopt distid:1234567812345678`` verifies the signature over DER(TBS_Sign), with the public
  key extracted from the signer certificate by ``openssl x509 -pubkey``;
* ``openssl x509 -inform DER -text`` parses the signer and maker certificates;
* the signer certificate's SM2-with-SM3 signature verifies under the maker's key with
  ``openssl pkeyutl ... -pkeyopt distid:1234567812345678`` over DER(TBSCertificate).
  ``openssl verify -CAfile maker.pem signer.pem`` is NOT usable on OpenSSL 3.0.19: it reports
  "certificate signature failure" for our chain, with or without ``-vfyopt distid:...``, and
  also for a self-signed SM2 root OpenSSL made itself (``openssl req -x509 -sigopt distid:...``
  then ``openssl verify -check_ss_sig``), so it does not apply the GM/T 0009 default ID there.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from asn1crypto import pem, x509

from common.crypto.gm import der_to_raw_signature
from seal.asn1 import SESSignature

OPENSSL = shutil.which("openssl")
DISTID = "distid:1234567812345678"
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([OPENSSL, *args], capture_output=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {done.stderr.decode(errors='replace')}")
    return done


def _parts(signature_der: bytes) -> tuple[bytes, bytes, bytes]:
    signature = SESSignature.load(signature_der)
    return signature["toSign"].dump(), signature["signature"].native, signature["cert"].native


@needs_openssl
def test_openssl_verifies_ses_signature(material, tmp_path):
    tbs, sig, cert = _parts(material.signature_der)
    (tmp_path / "tbs.der").write_bytes(tbs)
    (tmp_path / "sig.der").write_bytes(sig)
    (tmp_path / "cert.der").write_bytes(cert)
    run("x509", "-inform", "DER", "-in", str(tmp_path / "cert.der"), "-pubkey", "-noout",
        "-out", str(tmp_path / "pub.pem"))
    verify = ["pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin", "-digest", "sm3",
              "-in", str(tmp_path / "tbs.der"), "-sigfile", str(tmp_path / "sig.der"), "-pkeyopt", DISTID]
    done = run(*verify)
    assert b"Signature Verified Successfully" in done.stdout
    (tmp_path / "tbs.der").write_bytes(tbs[:-1] + bytes([tbs[-1] ^ 1]))
    assert run(*verify, check=False).returncode != 0


@needs_openssl
def test_openssl_parses_and_chains_certificates(material, tmp_path):
    (tmp_path / "signer.der").write_bytes(material.signer_der)
    (tmp_path / "maker.pem").write_bytes(pem.armor("CERTIFICATE", material.maker_der))
    (tmp_path / "signer.pem").write_bytes(pem.armor("CERTIFICATE", material.signer_der))
    text = run("x509", "-inform", "DER", "-in", str(tmp_path / "signer.der"), "-text", "-noout").stdout.decode()
    assert "Signature Algorithm: SM2-with-SM3" in text
    assert "ASN1 OID: SM2" in text
    assert "CA:FALSE" in text
    run("x509", "-in", str(tmp_path / "maker.pem"), "-pubkey", "-noout", "-out", str(tmp_path / "maker_pub.pem"))
    cert = x509.Certificate.load(material.signer_der)
    (tmp_path / "tbs_cert.der").write_bytes(cert["tbs_certificate"].dump())
    (tmp_path / "cert_sig.der").write_bytes(cert["signature_value"].native)
    done = run("pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "maker_pub.pem"), "-rawin", "-digest", "sm3",
               "-in", str(tmp_path / "tbs_cert.der"), "-sigfile", str(tmp_path / "cert_sig.der"), "-pkeyopt", DISTID)
    assert b"Signature Verified Successfully" in done.stdout


def test_gmssl_verifies_ses_signature(make_material):
    from gmssl.sm2 import CryptSM2

    material = make_material()
    tbs, sig, _cert = _parts(material.signature_der)
    point = material.signer_key.public_key().uncompressed()[1:].hex()
    if point.startswith("04"):  # gmssl's constructor lstrip("04")s such keys; make another
        material = make_material()
        tbs, sig, _cert = _parts(material.signature_der)
        point = material.signer_key.public_key().uncompressed()[1:].hex()
    if point.startswith("04"):
        pytest.skip("two keys in a row start with 04 (probability 2^-16)")
    verifier = CryptSM2(private_key=None, public_key=point)
    raw = der_to_raw_signature(sig).hex()
    assert verifier.verify_with_sm3(raw, tbs)
    assert not verifier.verify_with_sm3(raw, tbs + b"x")
