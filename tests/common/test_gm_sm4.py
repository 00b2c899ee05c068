"""SM4-GCM: RFC 8998 known answer, round trips, tamper detection, key checks."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.crypto.gm import GMError, InvalidKey, sm4_gcm_decrypt, sm4_gcm_encrypt

KEY = bytes(range(16))


def test_rfc8998_sm4_gcm_vector_decrypts():
    # RFC 8998 Appendix A.1.
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plaintext = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    ciphertext = bytes.fromhex(
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
    )
    tag = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")
    assert sm4_gcm_decrypt(key, nonce + ciphertext + tag, aad) == plaintext


@given(plaintext=st.binary(max_size=300), aad=st.binary(max_size=40))
def test_round_trip(plaintext, aad):
    blob = sm4_gcm_encrypt(KEY, plaintext, aad)
    assert len(blob) == 12 + len(plaintext) + 16
    assert sm4_gcm_decrypt(KEY, blob, aad) == plaintext


def test_nonces_differ():
    assert sm4_gcm_encrypt(KEY, b"x")[:12] != sm4_gcm_encrypt(KEY, b"x")[:12]


def _expect_decrypt_failure(key, blob, aad=b""):
    with pytest.raises(GMError) as info:
        sm4_gcm_decrypt(key, blob, aad)
    assert info.value.code == "sm4_decrypt_failed"


def test_every_tampered_byte_is_rejected():
    # Covers nonce (0..11), ciphertext (12..20) and tag (last 16).
    blob = sm4_gcm_encrypt(KEY, b"pay 100 fen", b"order-1")
    for i in range(len(blob)):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        _expect_decrypt_failure(KEY, bytes(tampered), b"order-1")


@pytest.mark.parametrize("aad", [b"", b"order-2", b"order-1\x00", b"order-"])
def test_wrong_aad_is_rejected(aad):
    _expect_decrypt_failure(KEY, sm4_gcm_encrypt(KEY, b"pay", b"order-1"), aad)


def test_truncation_and_wrong_key_are_rejected():
    blob = sm4_gcm_encrypt(KEY, b"pay")
    for cut in (1, 3, len(blob) - 27, len(blob) - 28, len(blob)):
        _expect_decrypt_failure(KEY, blob[: len(blob) - cut])
    _expect_decrypt_failure(KEY, blob + b"\x00")
    _expect_decrypt_failure(bytes(16), blob)


@pytest.mark.parametrize("key", [b"", bytes(15), bytes(17), bytes(32), "k" * 16])
def test_wrong_key_length_is_rejected(key):
    with pytest.raises(InvalidKey) as info:
        sm4_gcm_encrypt(key, b"x")
    assert info.value.code == "sm4_invalid_key"
    with pytest.raises(InvalidKey):
        sm4_gcm_decrypt(key, bytes(40))
