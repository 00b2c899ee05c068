"""Test doubles of the seal node's collaborators (real implementations of their interfaces)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.crypto import merkle
from seal.log.appends import canonical_leaf


class InMemoryLog:
    """The signature log's interface (``seal.signing.SignatureLog``) over an in-memory Merkle tree.

    Not transactional: an append stays even if the signer's transaction rolls back, so the
    tests that check atomicity use the database log.
    """

    def __init__(self) -> None:
        self.tree = merkle.MemoryTree(hash_fn=merkle.sm3)
        self.entries: list[dict[str, Any]] = []

    def append_events(self, session: Any, events: Sequence[dict[str, Any]]) -> list[int]:
        indexes = []
        for event in events:
            indexes.append(self.tree.append(canonical_leaf(event)))
            self.entries.append(dict(event))
        return indexes
