"""Self-check (tamper evidence): recompute the whole log from its entries and compare.

Reports changed, deleted and inserted entries and nodes, search columns that differ from their
leaves, stored signatures that do not hash to their leaf's digest, ``sign`` entries whose
signature is not stored, and checkpoints whose roots,
signatures or mutual consistency fail. Reads the whole log: O(n). The entries are the seal log's
own; the leaf-row walk and the node and checkpoint checks are :mod:`common.merkle_log.self_check`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.crypto.gm import SM2PublicKey, sm3
from common.merkle_log.self_check import (
    CheckReport,
    LeafWords,
    check_checkpoints,
    check_stored_leaf,
    compare_nodes,
    rebuild_tree,
)
from seal.log.appends import INDEXED_FIELDS, canonical_leaf, str_or_none
from seal.log.models import LogCheckpoint, LogEntry, LogNode
from seal.log.tree import log_size


@dataclass
class SelfCheckReport(CheckReport):
    entries_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "entries_checked": self.entries_checked,
                "nodes_checked": self.nodes_checked, "checkpoints_checked": self.checkpoints_checked,
                "problems": self.problems}


WORDS = LeafWords(prefix="entry", noun="leaf", of="an event", missing="a log entry is missing",
                  beyond="an entry exists beyond the committed log size")


def _check_entry(report: SelfCheckReport, entry: LogEntry) -> bytes:
    """Check one stored entry against its own leaf; returns the recomputed leaf hash."""
    index = entry.leaf_index
    recomputed, event = check_stored_leaf(report, index, entry.leaf, entry.leaf_hash, WORDS, canonical_leaf,
                                          lambda event: event)
    if event is None:
        return recomputed
    for name in INDEXED_FIELDS:
        if str_or_none(event.get(name)) != getattr(entry, name):
            report.add("index_mismatch", f"the search column {name} differs from the leaf", index=index)
    if entry.ses_signature is not None or entry.signature_der is not None:
        try:  # the entry's own copy, or (since seal_0007) the signature row's DER
            der = (base64.b64decode(entry.ses_signature, validate=True) if entry.ses_signature is not None
                   else bytes(entry.signature_der))
        except ValueError:
            der = b""
        if sm3(der).hex() != str(event.get("signature_digest", "")).lower():
            report.add("signature_digest_mismatch",
                       "the stored SES signature does not hash to the leaf's signature_digest", index=index)
    elif event.get("type") == "sign":  # every signature is stored with its entry: its row was removed
        report.add("signature_missing", "the signature this sign entry logs is not stored", index=index)
    return recomputed


def self_check(session: Session, verifiers: dict[str, tuple[SM2PublicKey, str]]) -> SelfCheckReport:
    """Recompute the whole log from its stored entries and compare with nodes and checkpoints.

    ``verifiers`` maps a key id to (public key, origin) for checkpoint signatures. Reports
    changed, deleted and inserted entries and nodes, changed search columns, changed and missing
    signature rows, checkpoints whose roots, signatures or mutual consistency fail. Reads the whole log: O(n).
    """
    report = SelfCheckReport(size=log_size(session))
    rows = session.scalars(select(LogEntry).order_by(LogEntry.leaf_index)).yield_per(1000)
    tree, report.entries_checked = rebuild_tree(report, rows, lambda entry: _check_entry(report, entry), WORDS)

    compare_nodes(session, report, LogNode, tree)
    check_checkpoints(session, report, LogCheckpoint, tree, verifiers)
    return report

