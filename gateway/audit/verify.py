"""Tamper check of the stored audit log (``xsn audit verify``).

Recomputes every leaf from the stored records, rebuilds the tree in memory and compares it with
the stored nodes and with every signed checkpoint; optionally proves that the log extends an
older checkpoint an auditor saved. A record changed, deleted or inserted by a direct database
edit shows up as a leaf-hash mismatch, a missing or unexpected record, a node mismatch or, when
the editor rewrote the nodes too, as checkpoints whose signed roots the log no longer has.
Records pruned after archiving count by their stored leaf hashes (level-0 nodes), and every
pruned index must be covered by an archive row. The records are the audit log's own; the
leaf-row walk and the node and checkpoint checks are :mod:`common.merkle_log.self_check`, shared
with the seal log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rfc8785
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.crypto.gm import SM2PublicKey
from common.crypto.signed_note import Checkpoint, NoteError, parse_note
from common.merkle_log import self_check
from gateway.audit import log
from gateway.audit.models import AuditArchive, AuditCheckpoint, AuditNode, AuditRecord

HASH = log.HASH


@dataclass
class VerifyReport(self_check.CheckReport):
    records_checked: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "records_checked": self.records_checked,
                "nodes_checked": self.nodes_checked, "checkpoints_checked": self.checkpoints_checked,
                "problems": self.problems, "notes": self.notes}


WORDS = self_check.LeafWords(prefix="record", noun="record", of="a record", missing="an audit record is missing",
                             beyond="a record exists beyond the committed log size")


def _check_record(report: VerifyReport, row: AuditRecord) -> bytes:
    index = row.leaf_index
    recomputed, expected = self_check.check_stored_leaf(report, index, row.leaf, row.leaf_hash, WORDS,
                                                        rfc8785.dumps, lambda record: log.row_values(record, index))
    if expected is not None:
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
    pruned_hashes = _pruned_leaf_hashes(session, report, pruned) if pruned else {}
    rows = session.scalars(select(AuditRecord).order_by(AuditRecord.leaf_index)).yield_per(1000)
    tree, report.records_checked = self_check.rebuild_tree(report, rows, lambda row: _check_record(report, row),
                                                           WORDS, known=pruned_hashes)

    self_check.compare_nodes(session, report, AuditNode, tree)

    newest = self_check.check_checkpoints(session, report, AuditCheckpoint, tree, verifiers)
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
    older = self_check.verify_checkpoint_note(report, note, None, verifiers, None)
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
