"""A stored log's tamper check, but for what a leaf holds: leaves, nodes and checkpoints.

A service reads its leaf rows in index order and checks what each holds (its own business)
with :func:`check_stored_leaf`; :func:`rebuild_tree` puts the recomputed leaf hashes into a
``common.crypto.merkle.MemoryTree``, reporting missing and surplus rows; the other functions
then compare that tree with the stored nodes and with every signed checkpoint, recording
problems on the service's report. Reads the whole log: O(n).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.crypto.gm import SM2PublicKey
from common.crypto.signed_note import Checkpoint, NoteError, verify_note
from common.merkle_log.store import HASH, HASH_SIZE

# key id -> (public key, origin) of every log key, active or retired.
Verifiers = dict[str, tuple[SM2PublicKey, str]]
T = TypeVar("T")


@dataclass
class CheckReport:
    """What a tamper check found; a service adds its own leaf count and ``to_dict``."""

    size: int = 0
    nodes_checked: int = 0
    checkpoints_checked: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, code: str, detail: str, **where: Any) -> None:
        self.problems.append({"code": code, "detail": detail, **where})


@dataclass(frozen=True)
class LeafWords:
    """How a service's report speaks of its leaf rows: the problem codes' ``prefix`` (``record``,
    ``entry``), a row's ``noun``, what a leaf is canonical JSON ``of``, and the details of a
    ``missing`` row and of one ``beyond`` the committed size."""

    prefix: str
    noun: str
    of: str
    missing: str
    beyond: str


def check_stored_leaf(report: CheckReport, index: int, leaf: str, stored_hash: bytes, words: LeafWords,
                      canonical: Callable[[dict[str, Any]], bytes], read: Callable[[dict[str, Any]], T]) -> tuple[
                          bytes, T | None]:
    """The leaf hash recomputed from a stored leaf, and ``read`` of the object it holds.

    Reports ``leaf_hash_mismatch`` when the stored hash differs, and ``leaf_not_canonical``
    (returning None for the object) when the leaf is not ``canonical`` JSON of an object or
    ``read`` refuses it (``ValueError``, ``TypeError``).
    """
    recomputed = merkle.leaf_hash(leaf.encode(), hash_fn=HASH)
    if bytes(stored_hash) != recomputed:
        report.add("leaf_hash_mismatch", f"the stored leaf hash is not the hash of the stored {words.noun}",
                   index=index)
    try:
        value = json.loads(leaf)
        if not isinstance(value, dict) or canonical(value) != leaf.encode():
            raise ValueError("not canonical")
        return recomputed, read(value)
    except (ValueError, TypeError):
        report.add("leaf_not_canonical", f"the stored {words.noun} is not canonical JSON of {words.of}", index=index)
        return recomputed, None


def rebuild_tree(report: CheckReport, rows: Iterable[Any], check: Callable[[Any], bytes], words: LeafWords, *,
                 known: Mapping[int, bytes] | None = None) -> tuple[merkle.MemoryTree, int]:
    """The tree of the first ``report.size`` leaves from ``rows`` (with a ``leaf_index``, in its
    order), and how many rows there were.

    ``check(row)`` checks a row and returns its recomputed leaf hash. An index with no row takes
    its hash from ``known`` (leaves whose rows were removed on purpose) or else is reported
    ``<prefix>_missing`` and takes a zero hash, keeping later positions aligned; a row at or
    beyond the size is reported ``<prefix>_beyond_head``.
    """
    known = known or {}
    tree = merkle.MemoryTree(hash_fn=HASH)
    count = 0

    def fill_to(index: int) -> None:
        while tree.size < index:
            if tree.size in known:
                tree.append_leaf_hash(known[tree.size])
            else:
                report.add(f"{words.prefix}_missing", words.missing, index=tree.size)
                tree.append_leaf_hash(bytes(HASH_SIZE))

    for row in rows:
        count += 1
        if row.leaf_index >= report.size:
            report.add(f"{words.prefix}_beyond_head", words.beyond, index=row.leaf_index)
            continue
        fill_to(row.leaf_index)
        tree.append_leaf_hash(check(row))
    fill_to(report.size)
    return tree, count


def compare_nodes(session: Session, report: CheckReport, node_model: Any, tree: merkle.MemoryTree) -> None:
    """Every stored node against the recomputed tree: changed, unexpected and missing ones."""
    seen: set[tuple[int, int]] = set()
    rows = session.execute(select(node_model.level, node_model.index, node_model.hash)).yield_per(5000)
    for level, index, h in rows:
        report.nodes_checked += 1
        seen.add((level, index))
        try:
            want = tree.get_node(level, index)
        except KeyError:
            report.add("node_unexpected", "a node exists that the log does not have", level=level, node=index)
            continue
        if bytes(h) != want:
            report.add("node_mismatch", "a stored node differs from the recomputed tree", level=level, node=index)
    for level, index in tree._nodes.keys() - seen:  # noqa: SLF001 - the reference tree's own layout
        report.add("node_missing", "a node of the tree is missing from the store", level=level, node=index)


def verify_checkpoint_note(report: CheckReport, note: str, key_id: str | None, verifiers: Verifiers,
                           size: int | None) -> Checkpoint | None:
    """The checkpoint a note signs, by the key ``key_id`` (any log key when None); None after a problem."""
    candidates = [verifiers[key_id]] if key_id in verifiers else list(verifiers.values()) if key_id is None else []
    if not candidates:
        report.add("checkpoint_key_unknown", "a checkpoint names a key the log does not have", size=size)
        return None
    error = ""
    for public, origin in candidates:
        try:
            return verify_note(note, origin, public, public.to_der(), origin=origin)
        except NoteError as exc:
            error = str(exc)
    report.add("checkpoint_signature_invalid", error, size=size)
    return None


def check_checkpoints(session: Session, report: CheckReport, checkpoint_model: Any, tree: merkle.MemoryTree,
                      verifiers: Verifiers) -> Checkpoint | None:
    """Each stored checkpoint: its signature, its row, its root in the tree, consistency with the one before.

    Returns the newest checkpoint that verified (None when none did).
    """
    previous: Checkpoint | None = None
    for row in session.scalars(select(checkpoint_model).order_by(checkpoint_model.tree_size)):
        report.checkpoints_checked += 1
        checkpoint = verify_checkpoint_note(report, row.note, row.key_id, verifiers, row.tree_size)
        if checkpoint is None:
            continue
        if checkpoint.size != row.tree_size or checkpoint.root_hash != bytes(row.root_hash):
            report.add("checkpoint_row_mismatch", "the checkpoint row differs from its signed note", size=row.tree_size)
        if checkpoint.size > tree.size:
            report.add("checkpoint_beyond_log", "a checkpoint is larger than the stored log", size=checkpoint.size)
        elif checkpoint.root_hash != tree.root(checkpoint.size):
            report.add("checkpoint_root_mismatch", "the log no longer has the root this checkpoint signed",
                       size=checkpoint.size)
        if previous is not None and checkpoint.size <= tree.size:
            try:
                proof = tree.consistency_proof(previous.size, checkpoint.size)
                merkle.verify_consistency(previous.size, checkpoint.size, previous.root_hash,
                                          checkpoint.root_hash, proof, hash_fn=HASH)
            except (merkle.ProofError, ValueError) as exc:
                report.add("checkpoints_inconsistent", f"checkpoints {previous.size} and {checkpoint.size} "
                           f"are not consistent: {exc}", size=checkpoint.size)
        previous = checkpoint
    return previous
