"""Tamper check of the stored audit log (``xsn audit verify``).

Recomputes every leaf from the stored records, rebuilds the tree in memory and compares it with
the stored nodes and with every signed checkpoint; optionally proves that the log extends an
older checkpoint an auditor saved. A record changed, deleted or inserted by a direct database
edit shows up as a leaf-hash mismatch, a missing or unexpected record, a node mismatch or, when
the editor rewrote the nodes too, as checkpoints whose signed roots the log no longer has.
Records pruned after archiving count by their stored leaf hashes (level-0 nodes), and every
pruned index must be covered by an archive row. The records are the audit log's own; the
node and checkpoint checks are :mod:`common.merkle_log.self_check`, shared with the seal log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.crypto.gm import SM2PublicKey
from common.crypto.signed_note import Checkpoint, NoteError, parse_note
from common.merkle_log.self_check import CheckReport, check_checkpoints, compare_nodes, verify_checkpoint_note
from gateway.audit import log
from gateway.audit.models import AuditArchive, AuditCheckpoint, AuditNode, AuditRecord

HASH = log.HASH


@dataclass
class VerifyReport(CheckReport):
    records_checked: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "records_checked": self.records_checked,
                "nodes_checked": self.nodes_checked, "checkpoints_checked": self.checkpoints_checked,
                "problems": self.problems, "notes": self.notes}


def _check_record(report: VerifyReport, row: AuditRecord) -> bytes:
    index = row.leaf_index
    recomputed = merkle.leaf_hash(row.leaf.encode(), hash_fn=HASH)
    if bytes(row.leaf_hash) != recomputed:
        report.add("leaf_hash_mismatch", "the stored leaf hash is not the hash of the stored record", index=index)
    try:
        record = json.loads(row.leaf)
        if not isinstance(record, dict) or rfc8785.dumps(record) != row.leaf.encode():
            raise ValueError("not canonical")
        expected = log.row_values(record, index)
    except (ValueError, TypeError, log.BadRecord):
        report.add("leaf_not_canonical", "the stored record is not canonical JSON of a record", index=index)
        return recomputed
    for name in (*log.INDEXED_FIELDS, "kind", "time"):
        if expected[name] != getattr(row, name):
            report.add("column_mismatch", f"the search column {name} differs from the record", index=index)
    return recomputed


def _pruned_leaf_hashes(session: Session, report: VerifyReport, pruned: int) -> dict[int, bytes]:
    covered = sorted(session.execute(select(AuditArchive.start, AuditArchive.end)).all())
    reach = 0
    for start, end in covered:
        if start <= reach:
            reach = max(reach, end)
    if reach < pruned:
        report.add("pruned_unarchived", f"records below {pruned} were removed but archives cover only [0, {reach})")
    rows = session.execute(select(AuditNode.index, AuditNode.hash).where(AuditNode.level == 0,
                                                                          AuditNode.index < pruned))
    return {int(i): bytes(h) for i, h in rows}


def verify_log(session: Session, verifiers: dict[str, tuple[SM2PublicKey, str]], *,
               older_note: str | None = None) -> VerifyReport:
    """Recompute the whole log (O(n)) and check nodes, checkpoints and an optional saved checkpoint.

    ``verifiers``: key id -> (public key, origin) of every log key, active or retired.
    """
    report = VerifyReport(size=log.log_size(session))
    pruned = log.pruned_below(session)
    tree = merkle.MemoryTree(hash_fn=HASH)
    pruned_hashes = _pruned_leaf_hashes(session, report, pruned) if pruned else {}
    expected = 0

    def fill_to(index: int) -> None:
        nonlocal expected
        while expected < index:
            if expected in pruned_hashes:
                tree.append_leaf_hash(pruned_hashes[expected])
            else:
                report.add("record_missing", "an audit record is missing", index=expected)
                tree.append_leaf_hash(bytes(log.HASH_SIZE))  # keep positions aligned
            expected += 1

    for row in session.scalars(select(AuditRecord).order_by(AuditRecord.leaf_index)).yield_per(1000):
        report.records_checked += 1
        if row.leaf_index >= report.size:
            report.add("record_beyond_head", "a record exists beyond the committed log size", index=row.leaf_index)
            continue
        fill_to(row.leaf_index)
        tree.append_leaf_hash(_check_record(report, row))
        expected += 1
    fill_to(report.size)

    compare_nodes(session, report, AuditNode, tree)

    newest = check_checkpoints(session, report, AuditCheckpoint, tree, verifiers)
    if older_note is not None:
        check_older(report, tree, older_note, verifiers, newest)
    return report


def check_older(report: VerifyReport, tree: merkle.MemoryTree, note: str,
                verifiers: dict[str, tuple[SM2PublicKey, str]], newest: Checkpoint | None) -> None:
    """Prove that the log (its newest checkpoint, or the recomputed tree) extends a saved checkpoint."""
    try:
        parse_note(note)
    except NoteError as exc:
        report.add("older_checkpoint_unreadable", str(exc))
        return
    older = verify_checkpoint_note(report, note, None, verifiers, None)
    if older is None:
        return
    if older.size > tree.size:
        report.add("older_checkpoint_beyond_log", f"the saved checkpoint (size {older.size}) is larger than the log "
                   f"({tree.size}): records were removed", size=older.size)
        return
    target_size = newest.size if newest is not None and newest.size <= tree.size else tree.size
    target_root = newest.root_hash if newest is not None and newest.size <= tree.size else tree.root(target_size)
    if older.size > target_size:
        target_size, target_root = tree.size, tree.root()
    try:
        merkle.verify_consistency(older.size, target_size, older.root_hash, target_root,
                                  tree.consistency_proof(older.size, target_size), hash_fn=HASH)
    except (merkle.ProofError, ValueError) as exc:
        report.add("older_checkpoint_inconsistent", f"the log does not extend the saved checkpoint of size "
                   f"{older.size}: {exc}", size=older.size)
        return
    report.notes.append(f"consistent with the saved checkpoint of size {older.size} (proved up to size {target_size})")
