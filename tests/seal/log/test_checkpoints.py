"""Checkpoints: signed, idempotent, kept, and published lazily when stale."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from common.crypto import merkle
from common.crypto.gm import SM2PrivateKey
from common.crypto.signed_note import NoteError, verify_note
from seal.log import checkpoints
from seal.log.models import LogCheckpoint
from tests.seal.log.events import ORIGIN, fill, signer


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
