"""The per-process signing material is keyed by the seal version (``eseal_sm3``), never stale."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from common.crypto.gm import sm3
from common.errors import Problem
from seal import grants, seals, ses, signing, verification
from seal.images import generate_seal_png
from seal.log.appends import SIGNATURE_LOG
from seal.models import Seal

LICENSES = grants.Actor(sub="svc-licenses", client_id="xsn-licenses", scopes=frozenset({"seal:sign"}))


def _seal_in(signature_der: bytes) -> bytes:
    return ses.parse_signature(signature_der)["toSign"]["eseal"].dump()


def test_a_new_picture_is_a_new_seal_version_for_signing(db, kek):
    from seal.seed import DEMO_ORG_CODE, DEMO_ORG_NAME

    seal = seals.create_seal(db, kek, org_code=DEMO_ORG_CODE, org_name=DEMO_ORG_NAME, kind="contract", actor="t")
    grants.add_grant(db, seal.id, "client", LICENSES.client_id, actor="t")
    assert seal.eseal_sm3 == sm3(seal.eseal_der).hex()
    first = signing.sign(db, kek, seal.id, actor=LICENSES, digest=sm3(b"one"), log=SIGNATURE_LOG).signature
    assert _seal_in(first.signature_der) == seal.eseal_der

    old_der = seal.eseal_der
    seals.replace_image(db, kek, seal.id, generate_seal_png("另一个单位", "合同专用章"), actor="t")
    replaced = db.get(Seal, seal.id)
    assert replaced.eseal_der != old_der and replaced.eseal_sm3 == sm3(replaced.eseal_der).hex()
    second = signing.sign(db, kek, seal.id, actor=LICENSES, digest=sm3(b"two"), log=SIGNATURE_LOG).signature
    assert _seal_in(second.signature_der) == replaced.eseal_der
    assert verification.verify(db, second.signature_der, document_digest=sm3(b"two")).valid


def test_a_stored_seal_that_does_not_match_its_digest_is_not_used(db, kek):
    from seal.seed import DEMO_ORG_CODE, DEMO_ORG_NAME

    seal = seals.create_seal(db, kek, org_code=DEMO_ORG_CODE, org_name=DEMO_ORG_NAME, kind="finance", actor="t")
    grants.add_grant(db, seal.id, "client", LICENSES.client_id, actor="t")
    forged = bytes(seal.eseal_der[:-1]) + bytes([seal.eseal_der[-1] ^ 1])
    db.execute(update(Seal).where(Seal.id == seal.id).values(eseal_der=forged, eseal_sm3="00" * 32))
    db.commit()
    with pytest.raises(Problem) as caught:
        signing.sign(db, kek, seal.id, actor=LICENSES, digest=sm3(b"x"), log=SIGNATURE_LOG)
    assert caught.value.code == "seal_integrity_error"
