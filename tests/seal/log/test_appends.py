"""Appending to the log: the stored layout, canonical leaves, rollbacks, refused events."""

from __future__ import annotations

import base64
import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from common.crypto import merkle
from common.crypto.gm import sm3
from seal.log import appends, proofs
from seal.log.models import LogEntry, LogNode
from seal.log.tree import log_size
from tests.seal.log.events import event, fill


def test_append_stores_the_memory_tree_layout(db):
    tree = fill(db, 37)
    stored = {(lvl, idx): bytes(h) for lvl, idx, h in db.execute(select(LogNode.level, LogNode.index, LogNode.hash))}
    assert stored == tree._nodes
    assert log_size(db) == 37
    assert proofs.root_hash(db, 37) == tree.root()


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


_ascii = st.text(alphabet=st.characters(max_codepoint=127), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_ascii, st.none() | _ascii, max_size=12))
def test_the_fast_canonical_form_is_rfc8785(flat):
    """Flat ASCII events take the json.dumps path: it must write RFC 8785's bytes exactly."""
    assert appends.canonical_leaf(flat) == rfc8785.dumps(flat)


def test_other_events_go_through_rfc8785():
    for other in ({"signer": "王小明", "type": "sign"}, {"n": 1.5, "t": True}, {"nested": {"b": 1, "a": None}}):
        assert appends.canonical_leaf(other) == rfc8785.dumps(other)
