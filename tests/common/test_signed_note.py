import base64
import hashlib

import pytest

from common.crypto.merkle import MemoryTree
from common.crypto.signed_note import (
    MAX_NOTE_BYTES,
    SIGNATURE_TYPE_SM2,
    Checkpoint,
    NoteError,
    Signature,
    compute_key_hint,
    parse_note,
    sign_note,
    verify_note,
)

NAME = "xsn.example/seal-log"
ROOT = hashlib.sha256(b"root").digest()


class Key:
    """An SM2 key pair seen through the signer / verifier protocols of signed_note."""

    def __init__(self):
        # Imported here so collecting this module does not depend on common.crypto.gm's import time.
        from common.crypto.gm import SM2PrivateKey

        self.private = SM2PrivateKey.generate()
        self.public = self.private.public_key()
        self.der = self.public.to_der()

    def sign(self, name, body):
        return sign_note(body, name, self.private, self.der)

    def verify(self, name, text, **kwargs):
        return verify_note(text, name, self.public, self.der, **kwargs)


@pytest.fixture(scope="module")
def key():
    return Key()


@pytest.fixture(scope="module")
def other_key():
    return Key()


@pytest.fixture(scope="module")
def note(key):
    return key.sign(NAME, Checkpoint(NAME, 7, ROOT).body())


def _b64(data):
    return base64.b64encode(data).decode()


def test_checkpoint_body_layout():
    cp = Checkpoint(NAME, 7, ROOT, ("ext one",))
    assert cp.body() == f"{NAME}\n7\n{_b64(ROOT)}\next one\n".encode()
    assert Checkpoint.from_body(cp.body().decode()) == cp


def test_sign_and_verify_round_trip(key, note):
    body = Checkpoint(NAME, 7, ROOT).body().decode()
    assert note.startswith(body + "\n\u2014 " + NAME + " ")
    assert note.endswith("\n") and note.count("\n") == 5
    assert key.verify(NAME, note) == Checkpoint(NAME, 7, ROOT)
    assert key.verify(NAME, note.encode(), origin=NAME).size == 7


def test_key_hint_is_sha256_of_name_type_byte_and_spki(key, note):
    expected = hashlib.sha256(NAME.encode() + b"\n\xff" + key.der).digest()[:4]
    assert SIGNATURE_TYPE_SM2 == 0xFF
    assert compute_key_hint(NAME, key.der) == expected
    _, [sig] = parse_note(note)
    assert sig.name == NAME and sig.key_hint == expected
    key.public.verify(Checkpoint(NAME, 7, ROOT).body(), sig.sig)


def test_checkpoint_of_an_sm3_tree(key):
    tree = MemoryTree()
    for i in range(10):
        tree.append(b"seal %d" % i)
    note = key.sign(NAME, Checkpoint(NAME, tree.size, tree.root()).body())
    cp = key.verify(NAME, note)
    assert (cp.size, cp.root_hash) == (10, tree.root())


@pytest.mark.parametrize(
    "tamper",
    [
        lambda lines: [NAME + "x", *lines[1:]],
        lambda lines: [lines[0], "8", *lines[2:]],
        lambda lines: [lines[0], lines[1], _b64(hashlib.sha256(b"other").digest()), *lines[3:]],
        lambda lines: [*lines[:3], "extension"],
    ],
    ids=["origin", "size", "root", "added-extension"],
)
def test_tampering_with_any_body_line_is_detected(key, note, tamper):
    body, sigs = note.split("\n\n")
    tampered = "\n".join(tamper(body.split("\n"))) + "\n\n" + sigs
    parse_note(tampered)  # still well-formed: only the signature can tell
    with pytest.raises(NoteError, match="does not verify"):
        key.verify(NAME, tampered)


def test_tampering_with_the_signature_is_detected(key, note):
    body, line = note.split("\n\n")
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    for position in (5, len(blob) // 2, len(blob) - 1):
        bad = bytearray(blob)
        bad[position] ^= 0x01
        with pytest.raises(NoteError, match="does not verify"):
            key.verify(NAME, f"{body}\n\n\u2014 {NAME} {_b64(bytes(bad))}\n")
    # A changed key hint makes it a signature by some other key: nothing left to trust.
    blob[0] ^= 0x01
    with pytest.raises(NoteError, match="no signature"):
        key.verify(NAME, f"{body}\n\n\u2014 {NAME} {_b64(bytes(blob))}\n")


def test_other_keys_and_names_are_not_trusted(key, other_key, note):
    with pytest.raises(NoteError, match="no signature"):
        other_key.verify(NAME, note)
    with pytest.raises(NoteError, match="no signature"):
        key.verify("xsn.example/other", note)
    # Right name and hint, wrong public key behind them: the signature must be checked, and fail.
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(note, NAME, other_key.public, key.der)


def test_unknown_signatures_are_kept_but_ignored(key, other_key, note):
    witness = other_key.sign("witness.example", Checkpoint(NAME, 7, ROOT).body())
    cosigned = note + witness.split("\n\n")[1]
    cp, sigs = parse_note(cosigned)
    assert [s.name for s in sigs] == [NAME, "witness.example"]
    assert key.verify(NAME, cosigned) == cp
    assert other_key.verify("witness.example", cosigned) == cp
    junk = cosigned + f"\u2014 stranger.example {_b64(b'abcd' + b'x' * 64)}\n"
    assert key.verify(NAME, junk) == cp
    assert parse_note(junk)[1][-1] == Signature("stranger.example", b"abcd", b"x" * 64)


def test_one_bad_signature_by_the_key_rejects_the_whole_note(key, note):
    good_line = note.split("\n\n")[1]
    blob = bytearray(base64.b64decode(good_line.split(" ")[2]))
    blob[-1] ^= 0x01
    with pytest.raises(NoteError, match="does not verify"):
        key.verify(NAME, note + f"\u2014 {NAME} {_b64(bytes(blob))}\n")


def test_origin_is_checked_when_given(key, note):
    with pytest.raises(NoteError, match="origin"):
        key.verify(NAME, note, origin="xsn.example/other-log")


def test_verifier_exceptions_of_any_type_fail_closed(key, note):
    class Broken:
        def verify(self, message, signature):
            raise RuntimeError("library error")

    with pytest.raises(NoteError, match="does not verify"):
        verify_note(note, NAME, Broken(), key.der)


def _note(body, sig_line=f"\u2014 {NAME} {_b64(b'hint' + b's' * 64)}\n"):
    return body + "\n" + sig_line


_ROOT64 = _b64(ROOT)
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Same bytes, but a padding bit set in the last character: decoders accept it by default.
_ROOT64_NONCANONICAL = _ROOT64[:-2] + _B64_ALPHABET[_B64_ALPHABET.index(_ROOT64[-2]) ^ 1] + "="


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"{NAME}\n7\n{_ROOT64}\n\u2014 {NAME} {_b64(b'hint' + b's' * 64)}\n", "blank line"),
        (f"{NAME}\n7\n{_ROOT64}\n\n", "no signature lines"),
        (_note(f"{NAME}\n7\n{_ROOT64}\n")[:-1], "must end with a newline"),
        (_note(f"{NAME}\n12a\n{_ROOT64}\n"), "decimal"),
        (_note(f"{NAME}\n+7\n{_ROOT64}\n"), "decimal"),
        (_note(f"{NAME}\n 7\n{_ROOT64}\n"), "decimal"),
        (_note(f"{NAME}\n\u0667\n{_ROOT64}\n"), "decimal"),  # Arabic-Indic seven
        (_note(f"{NAME}\n007\n{_ROOT64}\n"), "leading zeros"),
        (_note(f"{NAME}\n7\n{_ROOT64[:-1]}\n"), "base64"),
        (_note(f"{NAME}\n7\n{_ROOT64[:-2]}=A\n"), "base64"),
        (_note(f"{NAME}\n7\n{_ROOT64_NONCANONICAL}\n"), "canonical"),
        (_note(f"{NAME}\n7\n{_b64(ROOT[:16])}\n"), "32 bytes"),
        (_note(f"{NAME}\n7\n"), "origin, a size and a root"),
        (_note(f"\n7\n{_ROOT64}\n"), "non-empty"),
        (_note(f"{NAME}\n7\n{_ROOT64}\n\next\n"), "non-empty"),
        (_note(f"{NAME}\t\n7\n{_ROOT64}\n"), "control character"),
        (_note(f"{NAME}\r\n7\n{_ROOT64}\n"), "control character"),
        (_note(f"{NAME}\n7\n{_ROOT64}\n", f"- {NAME} {_b64(b'hint' + b's' * 64)}\n"), "em dash"),
        (_note(f"{NAME}\n7\n{_ROOT64}\n", f"\u2014 a+b {_b64(b'hint' + b's' * 64)}\n"), "key name"),
        (_note(f"{NAME}\n7\n{_ROOT64}\n", f"\u2014  {_b64(b'hint' + b's' * 64)}\n"), "key name"),
        (_note(f"{NAME}\n7\n{_ROOT64}\n", f"\u2014 {NAME}  {_b64(b'hint' + b's' * 64)}\n"), "signature line"),
        (_note(f"{NAME}\n7\n{_ROOT64}\n", f"\u2014 {NAME} {_b64(b'hint')}\n"), "at least one byte"),
        (_note(f"{NAME}\n7\n{_ROOT64}\n", f"\u2014 {NAME} {_b64(b'hint' + b's' * 64)}!\n"), "base64"),
        (_note(f"{NAME}\n7\n{_ROOT64}\n" + "x" * MAX_NOTE_BYTES + "\n"), "exceeds"),
    ],
)
def test_malformed_notes_are_rejected(key, text, reason):
    with pytest.raises(NoteError, match=reason):
        parse_note(text)
    with pytest.raises(NoteError):
        key.verify(NAME, text)


def test_zero_size_and_invalid_utf8():
    cp, _ = parse_note(_note(f"{NAME}\n0\n{_ROOT64}\n"))
    assert cp.size == 0
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note(_note(f"{NAME}\n7\n{_ROOT64}\n").encode().replace(b"7", b"\xff"))


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("", 1, ROOT), "non-empty"),
        (("a\nb", 1, ROOT), "single lines"),
        ((NAME, -1, ROOT), "non-negative"),
        ((NAME, True, ROOT), "non-negative"),
        ((NAME, 1, b""), "root hash"),
        ((NAME, 1, ROOT, ("",)), "non-empty"),
    ],
)
def test_checkpoint_rejects_bad_fields(args, reason):
    with pytest.raises(NoteError, match=reason):
        Checkpoint(*args)


def test_sign_note_rejects_bad_bodies_and_names(key):
    for body in (b"no newline", b"\n", b"two\n\n", b"ctl\x01\n"):
        with pytest.raises(NoteError):
            sign_note(body, NAME, key.private, key.der)
    for name in ("", "with space", "a+b", "tab\t"):
        with pytest.raises(NoteError):
            sign_note(b"body\n", name, key.private, key.der)
