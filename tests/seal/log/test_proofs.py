"""Roots and proofs from the stored nodes, against the in-memory reference tree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.crypto import merkle
from seal.log import entries, errors, proofs
from tests.seal.log.events import fill
from tests.support.sql_capture import statements_sent


@pytest.mark.slow
def test_proofs_match_the_reference_for_random_sizes(db):
    tree = fill(db, 70)

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data):
        size = data.draw(st.integers(1, 70))
        index = data.draw(st.integers(0, size - 1))
        first = data.draw(st.integers(0, size))
        root = proofs.root_hash(db, size)
        assert root == tree.root(size) == merkle.root_from_leaf_hashes(
            [tree.get_node(0, i) for i in range(size)])
        proof = proofs.inclusion_proof(db, index, size)
        assert proof == tree.inclusion_proof(index, size)
        merkle.verify_inclusion(tree.get_node(0, index), index, size, proof, root)
        consistency = proofs.consistency_proof(db, first, size)
        assert consistency == tree.consistency_proof(first, size)
        merkle.verify_consistency(first, size, tree.root(first), root, consistency)

    check()


def test_proofs_read_a_bounded_number_of_rows(db):
    """O(log n) reads: one batched query per proof, whatever the size."""
    fill(db, 40)
    with statements_sent(db, lambda statement: "log_nodes" in statement) as node_reads:
        proofs.inclusion_proof(db, 5, 40)
    assert len(node_reads) == 1


def test_out_of_range_requests_are_refused(db):
    fill(db, 5)
    with pytest.raises(errors.BadRange):
        proofs.root_hash(db, 6)
    with pytest.raises(errors.BadRange):
        proofs.inclusion_proof(db, 5, 5)
    with pytest.raises(errors.BadRange):
        proofs.consistency_proof(db, 4, 3)
    with pytest.raises(errors.BadRange):
        entries.entries_range(db, 3, 7)
    with pytest.raises(errors.BadRange):
        entries.entries_range(db, 2, 2)
