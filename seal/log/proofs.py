"""Roots and proofs of the stored tree (RFC 9162 §2.1), each a single indexed read of its nodes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from common.crypto import merkle
from seal.log.errors import BadRange
from seal.log.tree import HASH, check_size, with_prefetched_nodes


def root_hash(session: Session, size: int) -> bytes:
    """MTH of the first ``size`` leaves. :raise BadRange: beyond the log."""
    check_size(session, size)
    return with_prefetched_nodes(session, lambda get: merkle.subtree_root(0, size, get, hash_fn=HASH))


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of ``size``. :raise BadRange: out of bounds."""
    check_size(session, size)
    if not 0 <= index < size:
        raise BadRange(f"leaf index {index} is outside a tree of size {size}")
    return with_prefetched_nodes(session, lambda get: merkle.inclusion_proof(index, size, get, hash_fn=HASH))


def consistency_proof(session: Session, size1: int, size2: int) -> list[bytes]:
    """Proof that the tree of ``size2`` extends the tree of ``size1``. :raise BadRange: bad sizes."""
    check_size(session, size2)
    if not 0 <= size1 <= size2:
        raise BadRange(f"no consistency proof from size {size1} to size {size2}: need 0 <= first <= second")
    return with_prefetched_nodes(session, lambda get: merkle.consistency_proof(size1, size2, get, hash_fn=HASH))
