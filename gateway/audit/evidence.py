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

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy.orm import Session

from common.crypto import merkle
from common.merkle_log import offline
from common.merkle_log.offline import BundleError, load_public_key
from gateway.audit import checkpoints, log

BUNDLE_FORMAT = "xsn-gateway-audit-bundle/1"
HASH = merkle.sm3

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
        raise merkle.ProofError(f"range [{start}, {end}) is not within a tree of size {size}", reason="index_outside")
    hashes: Iterator[bytes] = iter(proof)

    def walk(lo: int, hi: int) -> bytes:
        if hi <= start or lo >= end:
            value = next(hashes, None)
            if value is None:
                raise merkle.ProofError("the range proof is too short", reason="proof_too_short")
            return value
        if hi - lo == 1:
            return leaf_hashes[lo - start]
        k = _split(hi - lo)
        return merkle.node_hash(walk(lo, lo + k), walk(lo + k, hi), hash_fn=HASH)

    root = walk(0, size)
    if next(hashes, None) is not None:
        raise merkle.ProofError("the range proof is too long", reason="proof_too_long")
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


# -- offline verification (the checks both logs share: common.merkle_log.offline) ----------

# Each kind of check and its English name; a record's own check is named ``record <index>``.
KINDS = {"checkpoint_signature": "checkpoint signature", "older_checkpoint_signature": "older checkpoint signature",
         "range": "range", "record": "record", "range_proof": "range proof", "consistency": "consistency"}


class Report(offline.Report):
    """The steps of :func:`verify_bundle`; as JSON each step is its name, verdict and detail."""

    def __init__(self) -> None:
        super().__init__(KINDS, entry_name="{name} {entry}")

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps]}


def read_bundle(text: str | bytes) -> dict[str, Any]:
    """:raise BundleError: not JSON, or not this format."""
    data = offline.load_json(text)
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


def verify_bundle(bundle: dict[str, Any], pinned_key_pem: bytes | str, *,
                  older_checkpoint: str | None = None) -> Report:
    """Every check the bundle allows, each reported. :raise BundleError: unreadable input."""
    key = load_public_key(pinned_key_pem)
    report = Report()
    checkpoint = offline.check_checkpoint(report, bundle["checkpoint"], key)
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
        if not offline.is_canonical_object(leaf):
            report.add("record", False, "the leaf is not canonical JSON (RFC 8785)", entry=record["index"])
        leaf_hashes.append(merkle.leaf_hash(leaf, hash_fn=HASH))
    try:
        proof = offline.hex_hashes(bundle.get("range_proof", []), "the range proof")
        root = root_from_range(start, checkpoint.size, leaf_hashes, proof)
        ok = root == checkpoint.root_hash
        report.add("range_proof", ok, f"the {len(leaf_hashes)} records and the range proof rebuild the checkpoint's "
                   f"root (size {checkpoint.size})" if ok else "the records do not rebuild the checkpoint's root: "
                   "a record was changed, removed or added")
    except merkle.ProofError as exc:
        report.add("range_proof", False, str(exc))
    if older_checkpoint is not None:
        older = offline.check_checkpoint(report, older_checkpoint, key, kind="older_checkpoint_signature",
                                         origin=checkpoint.origin)
        if older is not None:
            offline.check_consistency(report, older, checkpoint, bundle)
    return report
