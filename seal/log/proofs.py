"""Roots and proofs of the stored tree (RFC 9162 §2.1), each a single indexed read of its nodes.

Computed by the shared node store (:mod:`common.merkle_log.store`) over the seal log's tables.
"""

from __future__ import annotations

from seal.log.tree import STORE

__all__ = ["consistency_proof", "inclusion_proof", "root_hash"]

root_hash = STORE.root_hash
inclusion_proof = STORE.inclusion_proof
consistency_proof = STORE.consistency_proof
