"""Evidence bundles of the audit log: a range of records with a signed checkpoint and proofs.

A bundle proves a whole range at once with a *range proof*: the hashes of the subtrees of the
tree that lie wholly outside ``[start, end)``, in the order a walk of RFC 9162's recursive
definition meets them. With the range's leaves they rebuild the root, so an export of many
records carries O(log n) hashes instead of an inclusion path per record, and it also proves
that the range is complete: no record of it can be left out or added. Format::

    {"format": "xsn-gateway-audit-bundle/1", "origin": "...", "tree_size": N,
     "range": {"start": s, "end": e}, "checkpoint": "<C2SP signed note>",
     "public_key": {"pem": ..., "key_id": ..., "key_hint": ...},     # informational only
     "records": [{"index": i, "leaf": "<canonical JSON>"}, ...],
     "range_proof": ["<hex>", ...],
     "consistency": [{"first": m, "second": N, "proof": ["<hex>", ...]}]}

:func:`verify_bundle` needs nothing but the bundle and a log key pinned out of band: no network,
no database (``xsn audit verify --bundle``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.crypto.gm import GMError, SM2PublicKey
from common.crypto.signed_note import Checkpoint, NoteError, parse_note, verify_note
from gateway.audit import checkpoints, log

BUNDLE_FORMAT = "xsn-gateway-audit-bundle/1"
HASH = merkle.sm3


class BundleError(ValueError):
    """The input is not a readable bundle, key or checkpoint (as opposed to failing a check)."""


# -- range proofs ---------------------------------------------------------------------------


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def range_proof(start: int, end: int, size: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """Hashes of the maximal subtrees outside ``[start, end)`` in the tree of ``size``.

    ``subtree(lo, hi)`` is the MTH of leaves ``[lo, hi)``. :raise ValueError: bad range.
    """
    if not 0 <= start < end <= size:
        raise ValueError(f"range [{start}, {end}) is not a non-empty part of a tree of size {size}")
    out: list[bytes] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= start or lo >= end:
            out.append(subtree(lo, hi))
        elif hi - lo > 1:
            k = _split(hi - lo)
            walk(lo, lo + k)
            walk(lo + k, hi)

    walk(0, size)
    return out


def root_from_range(start: int, size: int, leaf_hashes: Sequence[bytes], proof: Sequence[bytes]) -> bytes:
    """The root a range of leaf hashes and its range proof lead to. :raise merkle.ProofError:"""
    end = start + len(leaf_hashes)
    if not 0 <= start < end <= size:
        raise merkle.ProofError(f"range [{start}, {end}) is not within a tree of size {size}")
    hashes: Iterator[bytes] = iter(proof)

    def walk(lo: int, hi: int) -> bytes:
        if hi <= start or lo >= end:
            value = next(hashes, None)
            if value is None:
                raise merkle.ProofError("the range proof is too short")
            return value
        if hi - lo == 1:
            return leaf_hashes[lo - start]
        k = _split(hi - lo)
        return merkle.node_hash(walk(lo, lo + k), walk(lo + k, hi), hash_fn=HASH)

    root = walk(0, size)
    if next(hashes, None) is not None:
        raise merkle.ProofError("the range proof is too long")
    return root


# -- assembling a bundle from the database --------------------------------------------------


def assemble(session: Session, checkpoint_row: Any, keys: dict[str, Any], *, start: int, end: int | None = None,
             consistency_from: Sequence[int] = ()) -> dict[str, Any]:
    """A bundle of records ``[start, end)`` proven against ``checkpoint_row``.

    :raise log.BadRange: the range is not within the checkpoint's tree, or records are missing
        (pruned after archiving: the archive holds them).
    """
    size = checkpoint_row.tree_size
    end = size if end is None else end
    if not 0 <= start < end <= size:
        raise log.BadRange(f"range [{start}, {end}) is not a non-empty part of the checkpoint's tree [0, {size})")
    records = []
    for first in range(start, end, log.MAX_RANGE):
        records.extend(log.records_range(session, first, min(first + log.MAX_RANGE, end)))
    if [r.leaf_index for r in records] != list(range(start, end)):
        raise log.BadRange(f"records of [{start}, {end}) are missing (pruned after archiving?)",
                           code="audit_records_missing")
    proof = log.with_prefetched_nodes(session, lambda get: range_proof(
        start, end, size, lambda lo, hi: merkle.subtree_root(lo, hi, get, hash_fn=HASH)))
    key = next((k for k in keys["keys"] if k["key_id"] == checkpoint_row.key_id), None)
    return {
        "format": BUNDLE_FORMAT, "origin": keys["origin"], "tree_size": size,
        "range": {"start": start, "end": end}, "checkpoint": checkpoint_row.note,
        "public_key": None if key is None else {"pem": key["public_key_pem"], "key_id": key["key_id"],
                                                "key_hint": key["key_hint"]},
        "records": [{"index": r.leaf_index, "leaf": r.leaf} for r in records],
        "range_proof": [h.hex() for h in proof],
        "consistency": [{"first": m, "second": size,
                         "proof": [h.hex() for h in log.consistency_proof(session, m, size)]}
                        for m in consistency_from],
    }


def export(session: Session, *, kek: bytes, origin: str, start: int = 0, end: int | None = None,
           tree_size: int | None = None, consistency_from: Sequence[int] = ()) -> dict[str, Any]:
    """Next to the database: prove against ``tree_size``'s checkpoint, or a fresh one."""
    if tree_size is None:
        row = checkpoints.publish(session, checkpoints.load_signer(session, kek, origin))
    else:
        row = checkpoints.for_size(session, tree_size)
    return assemble(session, row, checkpoints.keys_document(session, kek, origin), start=start, end=end,
                    consistency_from=consistency_from)


# -- offline verification -------------------------------------------------------------------


@dataclass
class Report:
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step["ok"] for step in self.steps)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.steps.append({"name": name, "ok": ok, "detail": detail})
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": self.steps}


def load_public_key(pem: bytes | str) -> SM2PublicKey:
    try:
        return SM2PublicKey.from_pem(pem.encode() if isinstance(pem, str) else pem)
    except (GMError, ValueError) as exc:
        raise BundleError(f"the pinned log key is not an SM2 public key PEM: {exc}") from None


def read_bundle(text: str | bytes) -> dict[str, Any]:
    """:raise BundleError: not JSON, or not this format."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BundleError(f"the bundle is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"not an audit-log bundle (want format {BUNDLE_FORMAT!r})")
    if not isinstance(data.get("checkpoint"), str) or not isinstance(data.get("records"), list) \
            or not isinstance(data.get("range"), dict):
        raise BundleError("the bundle needs a checkpoint note, a range and a list of records")
    for record in data["records"]:
        if not isinstance(record, dict) or not isinstance(record.get("index"), int) \
                or not isinstance(record.get("leaf"), str):
            raise BundleError("every record needs an integer index and a leaf string")
    return data


def _hashes(values: Any) -> list[bytes]:
    try:
        return [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        raise BundleError("a proof holds something that is not hex") from None


def check_note(report: Report, note: str, key: SM2PublicKey, label: str,
               origin: str | None = None) -> Checkpoint | None:
    try:
        name = origin or parse_note(note)[0].origin
        checkpoint = verify_note(note, name, key, key.to_der(), origin=name)
    except NoteError as exc:
        report.add(label, False, f"rejected: {exc}")
        return None
    report.add(label, True, f"signed by the pinned key: size {checkpoint.size}, root {checkpoint.root_hash.hex()}")
    return checkpoint


def verify_bundle(bundle: dict[str, Any], pinned_key_pem: bytes | str, *,
                  older_checkpoint: str | None = None) -> Report:
    """Every check the bundle allows, each reported. :raise BundleError: unreadable input."""
    key = load_public_key(pinned_key_pem)
    report = Report()
    checkpoint = check_note(report, bundle["checkpoint"], key, "checkpoint signature")
    if checkpoint is None:
        return report
    start, end = bundle["range"].get("start"), bundle["range"].get("end")
    indexes = [r["index"] for r in bundle["records"]]
    if not isinstance(start, int) or not isinstance(end, int) or indexes != list(range(start, end)) or start >= end:
        report.add("range", False, f"the records are not exactly the claimed range [{start}, {end}), in order")
        return report
    report.add("range", True, f"records [{start}, {end}) are all present, once each, in order")
    leaf_hashes = []
    for record in bundle["records"]:
        leaf = record["leaf"].encode()
        try:
            canonical = isinstance(json.loads(leaf), dict) and rfc8785.dumps(json.loads(leaf)) == leaf
        except (ValueError, TypeError, rfc8785.CanonicalizationError):
            canonical = False
        if not canonical:
            report.add(f"record {record['index']}", False, "the leaf is not canonical JSON (RFC 8785)")
        leaf_hashes.append(merkle.leaf_hash(leaf, hash_fn=HASH))
    try:
        root = root_from_range(start, checkpoint.size, leaf_hashes, _hashes(bundle.get("range_proof", [])))
        ok = root == checkpoint.root_hash
        report.add("range proof", ok, f"the {len(leaf_hashes)} records and the range proof rebuild the checkpoint's "
                   f"root (size {checkpoint.size})" if ok else "the records do not rebuild the checkpoint's root: "
                   "a record was changed, removed or added")
    except merkle.ProofError as exc:
        report.add("range proof", False, str(exc))
    if older_checkpoint is not None:
        older = check_note(report, older_checkpoint, key, "older checkpoint signature", checkpoint.origin)
        if older is not None:
            check_consistency(report, older, checkpoint, bundle)
    return report


def check_consistency(report: Report, older: Checkpoint, checkpoint: Checkpoint, bundle: dict[str, Any]) -> None:
    proofs = [p for p in bundle.get("consistency", []) if isinstance(p, dict)
              and p.get("first") == older.size and p.get("second") == checkpoint.size]
    if not proofs and older.size not in (0, checkpoint.size):
        report.add("consistency", False, f"the bundle has no consistency proof from size {older.size} "
                   f"(export with --consistency-from {older.size})")
        return
    try:
        merkle.verify_consistency(older.size, checkpoint.size, older.root_hash, checkpoint.root_hash,
                                  _hashes(proofs[0]["proof"]) if proofs else [], hash_fn=HASH)
    except merkle.ProofError as exc:
        report.add("consistency", False, f"the log is not an extension of the older checkpoint: {exc}")
        return
    report.add("consistency", True, f"size {checkpoint.size} extends the older checkpoint of size {older.size}")
