"""SM3 and HMAC-SM3: known answers, incremental hashing, RFC 2104 cross-check."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.crypto.gm import SM3Hasher, hmac_sm3, hmac_sm3_verify, sm3

# GB/T 32905 examples; the empty-string digest is a widely reproduced value.
KATS = [
    (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
    (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
    (b"", "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"),
]


@pytest.mark.parametrize(("message", "digest"), KATS)
def test_sm3_known_answers(message, digest):
    assert sm3(message).hex() == digest
    assert SM3Hasher(message).hexdigest() == digest


def test_sm3_accepts_bytes_like():
    assert sm3(bytearray(b"abc")) == sm3(memoryview(b"abc")) == sm3(b"abc")


def test_sm3_rejects_str():
    with pytest.raises(TypeError):
        sm3("abc")


@given(chunks=st.lists(st.binary(max_size=200), max_size=8))
def test_incremental_equals_one_shot(chunks):
    hasher = SM3Hasher()
    for chunk in chunks:
        assert hasher.update(chunk) is hasher
    assert hasher.digest() == sm3(b"".join(chunks))


def test_digest_does_not_end_the_hash():
    hasher = SM3Hasher().update(b"ab")
    first = hasher.digest()
    assert hasher.digest() == first
    assert hasher.update(b"c").digest() == sm3(b"abc")


def test_copy_is_independent():
    base = SM3Hasher(b"ab")
    clone = base.copy().update(b"c")
    assert base.digest() == sm3(b"ab")
    assert clone.digest() == sm3(b"abc")
    assert SM3Hasher.digest_size == 32 and SM3Hasher.block_size == 64


def _rfc2104_hmac_sm3(key: bytes, data: bytes) -> bytes:
    # Composed by hand from RFC 2104 so the check does not trust the library HMAC.
    if len(key) > 64:
        key = sm3(key)
    key = key.ljust(64, b"\x00")
    inner = sm3(bytes(b ^ 0x36 for b in key) + data)
    return sm3(bytes(b ^ 0x5C for b in key) + inner)


@given(key=st.binary(max_size=150), data=st.binary(max_size=300))
def test_hmac_sm3_matches_rfc2104_construction(key, data):
    assert hmac_sm3(key, data) == _rfc2104_hmac_sm3(key, data)


@pytest.mark.parametrize("key_len", [0, 1, 32, 63, 64, 65, 200])
def test_hmac_sm3_key_lengths_around_the_block_size(key_len):
    key = bytes(range(key_len % 256)) * (key_len // 256 + 1)
    key = key[:key_len]
    assert hmac_sm3(key, b"what do ya want for nothing?") == _rfc2104_hmac_sm3(key, b"what do ya want for nothing?")


def test_hmac_sm3_verify():
    mac = hmac_sm3(b"key", b"data")
    assert len(mac) == 32
    assert hmac_sm3_verify(b"key", b"data", mac)
    assert hmac_sm3_verify(b"key", b"data", bytearray(mac))
    assert not hmac_sm3_verify(b"key", b"datA", mac)
    assert not hmac_sm3_verify(b"kex", b"data", mac)
    assert not hmac_sm3_verify(b"key", b"data", mac[:-1])
    assert not hmac_sm3_verify(b"key", b"data", mac + b"\x00")
    assert not hmac_sm3_verify(b"key", b"data", b"")
    assert not hmac_sm3_verify(b"key", b"data", mac.hex())
    for i in range(len(mac)):
        tampered = bytearray(mac)
        tampered[i] ^= 0x80
        assert not hmac_sm3_verify(b"key", b"data", bytes(tampered))
