"""Transparency-log checkpoints as C2SP signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint).

A note is the checkpoint body, a blank line, then one or more signature lines::

    xsn.xa.gov.cn/seal-log
    1024
    <base64 root hash>

    — xsn.xa.gov.cn/seal-log <base64(4-byte key hint || SM2 signature)>

SM2 has no signature type byte assigned by the spec, so we use the escape byte 0xFF that the
spec reserves for unassigned types, followed by the key's SubjectPublicKeyInfo DER; the SPKI
names the SM2 curve, which gives the "longer identifier" the spec recommends after 0xFF.
Signing and verifying go through two tiny protocols so this module needs no particular SM2
library (``common.crypto.gm`` keys fit them as they are).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Protocol

SIGNATURE_TYPE_SM2 = 0xFF  # "unregistered / SM2-SM3", followed by the SPKI DER in the key hint
# The spec asks verifiers for a limit that still admits 16 signatures; a checkpoint body is
# three short lines, so 1 MiB for the whole note is generous and keeps parsing cheap.
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
DEFAULT_HASH_SIZE = 32  # SM3 and SHA-256 both give 32 bytes
_DASH = "\u2014 "


class NoteError(ValueError):
    """A note is malformed, or carries no valid signature from the expected key.

    The message is English for logs and CLIs; ``reason`` is a stable code a page words in its
    own language (``malformed_*`` the note's form, else ``no_signature_by_key``,
    ``signature_invalid``, ``origin_mismatch``, ``too_large``).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Signer(Protocol):
    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    def verify(self, message: bytes, signature: bytes) -> None:
        """Return on success; raise (any exception) if the signature is invalid."""


@dataclass(frozen=True)
class Signature:
    name: str
    key_hint: bytes
    sig: bytes


def _check_text(text: str, what: str) -> None:
    if any(c < " " and c != "\n" for c in text):
        raise NoteError(f"{what} contains a control character", reason="malformed_control_character")


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError("a key name must be non-empty, without spaces or '+'", reason="malformed_key_name")
    _check_text(name, "the key name")


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size and root hash, plus optional opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for line in (self.origin, *self.extensions):
            if not line or "\n" in line:
                raise NoteError("origin and extension lines must be non-empty single lines",
                                reason="malformed_checkpoint_line")
            _check_text(line, "a checkpoint line")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise NoteError("the tree size must be a non-negative integer", reason="malformed_tree_size")
        if not isinstance(self.root_hash, bytes) or not self.root_hash:
            raise NoteError("the root hash must be non-empty bytes", reason="malformed_root_hash")

    def body(self) -> bytes:
        """The signed note text: every line, extensions included, ends in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines).encode()

    @classmethod
    def from_body(cls, body: str, *, hash_size: int = DEFAULT_HASH_SIZE) -> Checkpoint:
        """Parse a checkpoint body. :raise NoteError: on any deviation from tlog-checkpoint."""
        if not body.endswith("\n"):
            raise NoteError("the checkpoint body must end with a newline", reason="malformed_newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("a checkpoint has an origin, a size and a root hash line", reason="malformed_too_few_lines")
        origin, size_text, root_text, *extensions = lines
        if not size_text.isascii() or not size_text.isdigit():
            raise NoteError("the tree size must be ASCII decimal digits", reason="malformed_tree_size")
        if size_text != "0" and size_text.startswith("0"):
            raise NoteError("the tree size must not have leading zeros", reason="malformed_tree_size")
        root = _b64decode(root_text, "root hash")
        if len(root) != hash_size:
            raise NoteError(f"the root hash must be {hash_size} bytes, got {len(root)}", reason="malformed_root_hash")
        return cls(origin, int(size_text), root, tuple(extensions))


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"the {what} is not valid base64", reason="malformed_base64") from None
    # b64decode ignores stray bits in the last character; a second spelling of the same bytes
    # would let two different notes carry the same signature, so insist on the canonical form.
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"the {what} is not canonical base64", reason="malformed_base64")
    return raw


def compute_key_hint(name: str, public_key_der: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0xFF || SPKI DER)[:4], the key ID recommended by signed-note."""
    _check_key_name(name)
    return hashlib.sha256(name.encode() + b"\n" + bytes([SIGNATURE_TYPE_SM2]) + public_key_der).digest()[:4]


def sign_note(body: bytes | str, name: str, signer: Signer, public_key_der: bytes) -> str:
    """Sign a note body and return the complete note text (body, blank line, one signature).

    :raise NoteError: if the body or key name is malformed.
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if not text.endswith("\n") or text.endswith("\n\n") or text == "\n":
        raise NoteError("a note body must be non-empty and end with exactly one newline", reason="malformed_newline")
    _check_text(text, "the note body")
    sig = signer.sign(text.encode())
    encoded = base64.b64encode(compute_key_hint(name, public_key_der) + sig).decode()
    return f"{text}\n{_DASH}{name} {encoded}\n"


def split_note(text: str | bytes) -> tuple[str, list[Signature]]:
    """Split a note into its signed text and its signature lines, checking the format strictly.

    :raise NoteError: if the note is too large, not UTF-8, or malformed.
    """
    raw = text if isinstance(text, bytes) else text.encode("utf-8")
    if len(raw) > MAX_NOTE_BYTES:
        raise NoteError(f"the note exceeds {MAX_NOTE_BYTES} bytes", reason="too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("the note is not valid UTF-8", reason="malformed_utf8") from None
    _check_text(text, "the note")
    if not text.endswith("\n"):
        raise NoteError("every line of a note, the last included, must end with a newline", reason="malformed_newline")
    # The spec separates text from signatures at the *last* blank line.
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line before its signatures", reason="malformed_no_blank_line")
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block:
        raise NoteError("the note has no signature lines", reason="malformed_no_signatures")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has more than {MAX_SIGNATURES} signatures", reason="too_large")
    signatures = []
    for line in lines:
        if not line.startswith(_DASH):
            raise NoteError("a signature line must start with an em dash and a space",
                            reason="malformed_signature_line")
        parts = line[len(_DASH) :].split(" ")
        if len(parts) != 2:
            raise NoteError("a signature line is '— <name> <base64>'", reason="malformed_signature_line")
        name, encoded = parts
        _check_key_name(name)
        blob = _b64decode(encoded, "signature")
        if len(blob) < 5:
            raise NoteError("a signature holds a 4-byte key hint and at least one byte",
                            reason="malformed_signature_line")
        signatures.append(Signature(name, blob[:4], blob[4:]))
    return body, signatures


def parse_note(text: str | bytes, *,
               hash_size: int = DEFAULT_HASH_SIZE) -> tuple[Checkpoint, list[Signature]]:
    """Parse a checkpoint note without verifying anything; unknown signatures are kept.

    :raise NoteError: if the note or its checkpoint body is malformed.
    """
    body, signatures = split_note(text)
    return Checkpoint.from_body(body, hash_size=hash_size), signatures


def verify_note(text: str | bytes, name: str, verifier: Verifier, public_key_der: bytes, *,
                origin: str | None = None, hash_size: int = DEFAULT_HASH_SIZE) -> Checkpoint:
    """Return the checkpoint if the note carries a valid signature by the given key.

    Fails closed: signatures by other keys are ignored, but any signature that claims this key
    (same name and key hint) and does not verify rejects the whole note, as the spec advises.
    :raise NoteError: if the note is malformed, has no signature by this key, a signature by
        this key is invalid, or the origin differs from ``origin`` when one is given.
    """
    body, signatures = split_note(text)
    checkpoint = Checkpoint.from_body(body, hash_size=hash_size)
    hint = compute_key_hint(name, public_key_der)
    mine = [s for s in signatures if s.name == name and s.key_hint == hint]
    if not mine:
        raise NoteError(f"the note has no signature by key {name!r}", reason="no_signature_by_key")
    message = body.encode()
    for signature in mine:
        try:
            verifier.verify(message, signature.sig)
        # The verifier may come from any SM2 library, each with its own exception type; every
        # failure, whatever its class, must reject the note.
        except Exception as exc:
            raise NoteError(f"the signature by key {name!r} does not verify", reason="signature_invalid") from exc
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"the checkpoint origin {checkpoint.origin!r} is not {origin!r}", reason="origin_mismatch")
    return checkpoint
