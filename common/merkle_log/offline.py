"""Offline checks of a stored log's evidence bundle: pure functions, no network, no database.

Shared by the gateway audit log (:mod:`gateway.audit.evidence`) and the seal signature log
(:mod:`seal.log.verify_offline`). What a bundle holds besides its checkpoint and consistency
proofs (records with a range proof, entries with inclusion proofs) is each service's own; the
pieces here are what both check the same way: the pinned key, the checkpoint notes it signs,
a leaf's canonical form and the consistency with an older checkpoint. Each check is one
:class:`Step` of a :class:`Report`, in English (``detail``, for the CLIs) and as a ``code``
with ``params`` a page words in its own language; a failed check's ``reason`` param is the
stable code of its exception (``NoteError``, ``ProofError``, ``BundleError``), not its
English message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from common.crypto import merkle
from common.crypto.gm import GMError, SM2PublicKey
from common.crypto.signed_note import Checkpoint, NoteError, parse_note, verify_note

HASH = merkle.sm3


class BundleError(ValueError):
    """The input is not a readable bundle, key or checkpoint (as opposed to failing a check).

    ``reason``: a stable code, like :class:`~common.crypto.merkle.ProofError`'s, for a failed
    step a page words in its own language (``not_hex``: a proof's hashes are not hex).
    """

    def __init__(self, message: str, *, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Step:
    kind: str
    ok: bool
    detail: str
    name: str
    entry: int | None = None
    code: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "kind": self.kind, "entry": self.entry,
                "code": self.code, "params": self.params}


@dataclass
class Report:
    """The checks run, in order. ``names``: each kind's English name; ``entry_name``: how a
    check of one leaf is named (``{entry}`` its index, ``{name}`` the kind's name)."""

    names: Mapping[str, str]
    entry_name: str = "entry {entry}: {name}"
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def add(self, kind: str, ok: bool, detail: str, *, entry: int | None = None, code: str = "",
            **params: Any) -> bool:
        """One check's result: ``kind`` (a key of ``names``), the English ``detail``, and the
        same as ``code`` and ``params`` for a translation. Returns ``ok``."""
        name = self.names[kind] if entry is None else self.entry_name.format(entry=entry, name=self.names[kind])
        self.steps.append(Step(kind, ok, detail, name, entry, code, params))
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [step.to_dict() for step in self.steps]}


# -- parsing inputs -------------------------------------------------------------------------


def load_public_key(pem: bytes | str) -> SM2PublicKey:
    """:raise BundleError: not an SM2 public key in PEM."""
    try:
        return SM2PublicKey.from_pem(pem.encode() if isinstance(pem, str) else pem)
    except (GMError, ValueError) as exc:
        raise BundleError(f"the pinned log key is not an SM2 public key PEM: {exc}") from None


def load_json(text: str | bytes) -> Any:
    """:raise BundleError: not JSON."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BundleError(f"the bundle is not JSON: {exc}") from None


def hex_hashes(values: Any, what: str) -> list[bytes]:
    """:raise BundleError: ``values`` is not a list of hex strings."""
    if not isinstance(values, list):
        raise BundleError(f"{what} must be a list of hex hashes", reason="not_hex")
    try:
        return [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        raise BundleError(f"{what} contains something that is not hex", reason="not_hex") from None


def is_canonical_object(leaf: bytes) -> bool:
    """Whether ``leaf`` is RFC 8785 canonical JSON of an object (what both logs' leaves are)."""
    try:
        value = json.loads(leaf)
        return isinstance(value, dict) and rfc8785.dumps(value) == leaf
    except (ValueError, TypeError, rfc8785.CanonicalizationError):
        return False


# -- the checks -----------------------------------------------------------------------------


def check_checkpoint(report: Report, note: str, key: SM2PublicKey, *, kind: str = "checkpoint_signature",
                     origin: str | None = None) -> Checkpoint | None:
    """Verify a checkpoint note's SM2 signature by the pinned key (key name = ``origin``, by
    default the note's own); None after a failed step."""
    try:
        name = origin or parse_note(note)[0].origin
        checkpoint = verify_note(note, name, key, key.to_der(), origin=name)
    except NoteError as exc:
        report.add(kind, False, f"rejected: {exc}", code="rejected", reason=exc.reason)
        return None
    report.add(kind, True, f"signed by the pinned key: origin {checkpoint.origin}, size {checkpoint.size}, "
               f"root {checkpoint.root_hash.hex()}", code="signed", origin=checkpoint.origin, size=checkpoint.size,
               root=checkpoint.root_hash.hex())
    return checkpoint


def check_consistency(report: Report, older: Checkpoint, checkpoint: Checkpoint, bundle: Mapping[str, Any]) -> None:
    """The bundle's checkpoint extends ``older``, by the bundle's consistency proof between their sizes."""
    if older.size > checkpoint.size:
        report.add("consistency", False, f"the older checkpoint (size {older.size}) is larger than the "
                   f"bundle's (size {checkpoint.size})", code="older_larger", older=older.size, size=checkpoint.size)
        return
    proofs = [p for p in bundle.get("consistency", []) if isinstance(p, dict)
              and p.get("first") == older.size and p.get("second") == checkpoint.size]
    if not proofs and older.size not in (0, checkpoint.size):
        report.add("consistency", False, f"the bundle has no consistency proof from size {older.size} "
                   f"to {checkpoint.size} (export with --consistency-from {older.size})", code="no_consistency_proof",
                   older=older.size, size=checkpoint.size)
        return
    try:
        proof = hex_hashes(proofs[0]["proof"], "the consistency proof") if proofs else []
        merkle.verify_consistency(older.size, checkpoint.size, older.root_hash, checkpoint.root_hash, proof,
                                  hash_fn=HASH)
    except (merkle.ProofError, BundleError) as exc:
        report.add("consistency", False, f"the log is not an extension of the older checkpoint: {exc}",
                   code="not_extension", reason=exc.reason)
        return
    report.add("consistency", True, f"size {checkpoint.size} extends the older checkpoint of size {older.size}",
               code="extends", older=older.size, size=checkpoint.size)
