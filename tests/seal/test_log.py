"""The database-backed signature log against common.crypto.merkle's MemoryTree reference."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from common.crypto import merkle
from common.crypto.gm import SM2PrivateKey, sm3
from common.crypto.signed_note import NoteError, verify_note
from common.db import get_db
from seal.log import appends, checkpoints, entries, errors, proofs, self_check
from seal.log.models import LogCheckpoint, LogEntry, LogNode
from seal.log.tree import log_size

ORIGIN = "xsn.test/seal-log"


def event(i: int, **overrides) -> dict:
    base = {"type": "sign", "time": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i)).isoformat(),
            "seal_id": f"seal-{i % 3}", "seal_code": f"6101000000{i % 3:06d}", "org_code": "91610100MA6TG8XX0X",
            "signer": f"staff-{i % 2}", "client_id": "licenses", "document_digest": sm3(b"doc %d" % i).hex(),
            "signature_digest": sm3(b"sig %d" % i).hex(), "request_id": f"req-{i}"}
    base.update(overrides)
    return base


@pytest.fixture
def app(make_app):
    return make_app("seal")


@pytest.fixture
def db(app):
    with get_db(app).session() as session:
        yield session


def fill(session, n: int, start: int = 0) -> merkle.MemoryTree:
    tree = merkle.MemoryTree()
    for i in range(start, start + n):
        index = appends.append_event(session, event(i))
        assert index == i
        tree.append(rfc8785.dumps(event(i)))
    session.commit()
    return tree


def signer() -> checkpoints.LogSigner:
    return checkpoints.LogSigner(origin=ORIGIN, key_id="test-key", private_key=SM2PrivateKey.generate())


def test_append_stores_the_memory_tree_layout(db):
    tree = fill(db, 37)
    stored = {(lvl, idx): bytes(h) for lvl, idx, h in db.execute(select(LogNode.level, LogNode.index, LogNode.hash))}
    assert stored == tree._nodes
    assert log_size(db) == 37
    assert proofs.root_hash(db, 37) == tree.root()


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


def test_proofs_read_a_bounded_number_of_rows(app, db):
    """O(log n) reads: one batched query per proof, whatever the size."""
    fill(db, 40)
    from sqlalchemy import event as sa_event

    statements = []
    engine = get_db(app).engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    sa_event.listen(engine, "before_cursor_execute", listener)
    try:
        proofs.inclusion_proof(db, 5, 40)
    finally:
        sa_event.remove(engine, "before_cursor_execute", listener)
    node_reads = [s for s in statements if "log_nodes" in s]
    assert len(node_reads) == 1


def test_leaf_is_the_canonical_json_and_the_signature_is_kept_beside_it(db):
    der = b"\x30\x03\x02\x01\x01"
    ev = event(0, signer="张三", signature_digest=sm3(der).hex())
    index = appends.append_event(db, dict(reversed(list(ev.items()))), ses_der=der)
    db.commit()
    entry = db.get(LogEntry, index)
    assert entry.leaf.encode() == rfc8785.dumps(ev)
    assert "ses" not in json.loads(entry.leaf)
    assert base64.b64decode(entry.ses_signature) == der
    assert bytes(entry.leaf_hash) == merkle.leaf_hash(rfc8785.dumps(ev))
    assert (entry.signer, entry.seal_code) == ("张三", ev["seal_code"])


def test_a_rolled_back_append_leaves_no_gap(db):
    assert appends.append_event(db, event(0)) == 0
    db.rollback()
    assert appends.append_event(db, event(1)) == 0
    db.commit()
    assert appends.append_event(db, event(2)) == 1
    db.commit()
    assert db.scalar(select(func.count()).select_from(LogEntry)) == 2


@pytest.mark.parametrize("bad", [{"type": ""}, {"time": None}, {"time": "2026-01-01T00:00:00"}, {"time": "yesterday"}])
def test_append_rejects_events_without_type_or_aware_time(db, bad):
    with pytest.raises(ValueError):
        appends.append_event(db, event(0, **bad))


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


def test_checkpoints_are_signed_idempotent_and_kept(db):
    key = signer()
    empty = checkpoints.publish_checkpoint(db, key)
    assert empty.tree_size == 0 and bytes(empty.root_hash) == merkle.empty_root()
    tree = fill(db, 9)
    first = checkpoints.publish_checkpoint(db, key)
    again = checkpoints.publish_checkpoint(db, key)
    assert again.id == first.id
    public = key.private_key.public_key()
    checkpoint = verify_note(first.note, ORIGIN, public, public.to_der(), origin=ORIGIN)
    assert (checkpoint.size, checkpoint.root_hash) == (9, tree.root())
    with pytest.raises(NoteError):
        other = SM2PrivateKey.generate().public_key()
        verify_note(first.note, ORIGIN, other, public.to_der())
    fill(db, 3, start=9)
    checkpoints.publish_checkpoint(db, key)
    assert [c.tree_size for c in db.scalars(select(LogCheckpoint).order_by(LogCheckpoint.tree_size))] == [0, 9, 12]


def test_latest_checkpoint_is_published_lazily(db):
    key = signer()
    calls = []

    def get_signer():
        calls.append(1)
        return key

    fill(db, 3)
    first = checkpoints.latest_checkpoint(db, get_signer, max_age=3600)
    assert first.tree_size == 3
    fill(db, 2, start=3)
    # Grown, but the newest checkpoint is fresh: no new signature yet...
    assert checkpoints.latest_checkpoint(db, get_signer, max_age=3600).tree_size == 3
    # ...unless a proof needs a checkpoint covering the new entry, or it is stale.
    assert checkpoints.latest_checkpoint(db, get_signer, max_age=3600, covering=4).tree_size == 5
    fill(db, 1, start=5)
    assert checkpoints.latest_checkpoint(db, get_signer, max_age=0).tree_size == 6
    assert len(calls) == 3


def test_search_filters_and_pages(db):
    fill(db, 12)
    rows, total = entries.search_entries(db, entries.SearchQuery(seal_code=event(1)["seal_code"]))
    assert total == 4 and [r.leaf_index for r in rows] == [10, 7, 4, 1]
    rows, total = entries.search_entries(db, entries.SearchQuery(signer="staff-0", seal_id="seal-0"), page=2,
                                         per_page=1)
    assert total == 2 and [r.leaf_index for r in rows] == [0]
    digest = event(5)["document_digest"].upper()
    assert [r.leaf_index for r in entries.search_entries(db, entries.SearchQuery(document_digest=digest))[0]] == [5]
    since = datetime(2026, 1, 1, 0, 3, tzinfo=UTC)
    rows, total = entries.search_entries(db, entries.SearchQuery(since=since, until=since + timedelta(minutes=2)))
    assert [r.leaf_index for r in rows] == [4, 3]


def test_self_check_passes_on_an_untouched_log(db):
    key = signer()
    fill(db, 10)
    checkpoints.publish_checkpoint(db, key)
    fill(db, 5, start=10)
    checkpoints.publish_checkpoint(db, key)
    public = key.private_key.public_key()
    report = self_check.self_check(db, {"test-key": (public, ORIGIN)})
    assert report.ok, report.problems
    assert (report.size, report.entries_checked, report.checkpoints_checked) == (15, 15, 2)
    assert report.nodes_checked == 15 + 7 + 3 + 1  # the perfect subtrees of a 15-leaf tree
