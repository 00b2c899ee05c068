"""Grants decide who may sign (:mod:`seal.grants`).
"""

from __future__ import annotations

from common.crypto.gm import sm3
from seal import grants, seals
from tests.seal.domain import (
    DIGEST,
    LICENSES,
    PAYMENT,
    STAFF,
    expect_problem,
    sign,
)


def granted(db, seal, actor) -> bool:
    return seal.id in {s.id for s in grants.granted_seals(db, actor)}


def test_grants_decide_who_may_sign(db, kek, seal):
    assert granted(db, seal, LICENSES)
    assert not granted(db, seal, PAYMENT) and not granted(db, seal, STAFF)
    expect_problem("seal_not_granted", 403, sign, db, kek, seal.id, actor=PAYMENT, digest=DIGEST)

    staff = grants.add_grant(db, seal.id, "subject", STAFF.sub, actor="admin-1")
    again = grants.add_grant(db, seal.id, "subject", f" {STAFF.sub} ", actor="admin-1")
    assert again.id == staff.id  # idempotent
    # A subject grant is for that person whatever client they use; a client grant is not for
    # another subject of the same name on another client.
    assert granted(db, seal, grants.Actor(sub=STAFF.sub, client_id="another-app"))
    assert not granted(db, seal, grants.Actor(sub=LICENSES.sub, client_id="another-app"))
    assert sign(db, kek, seal.id, actor=STAFF, digest=DIGEST).signature.signer == STAFF.sub
    assert [s.id for s in grants.granted_seals(db, STAFF)] == [seal.id]
    assert [(g.grantee_type, g.grantee) for g in grants.list_grants(db, seal.id)] == [
        ("client", "xsn-licenses"), ("subject", "person-42")]

    grants.remove_grant(db, seal.id, staff.id, actor="admin-1")
    expect_problem("seal_not_granted", 403, sign, db, kek, seal.id, actor=STAFF, digest=sm3(b"other"))
    assert grants.granted_seals(db, STAFF) == []
    expect_problem("grant_not_found", 404, grants.remove_grant, db, seal.id, staff.id, actor="admin-1")
    expect_problem("invalid_grantee_type", 422, grants.add_grant, db, seal.id, "group", "x", actor="a")
    expect_problem("invalid_grantee", 422, grants.add_grant, db, seal.id, "client", "  ", actor="a")
    expect_problem("seal_not_found", 404, grants.add_grant, db, "nope", "client", "x", actor="a")
    history = [(e.action, e.reason) for e in seals.history(db, seal.id) if e.action.startswith("grant")]
    assert history == [("grant_added", "client:xsn-licenses"), ("grant_added", "subject:person-42"),
                       ("grant_removed", "subject:person-42")]
