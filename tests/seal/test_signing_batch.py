"""Batch signing (``POST /seals/<id>/sign-batch``, :func:`seal.signing.sign_batch`).

Order, all-or-nothing (a refused item, a signer failing half-way, a log failing half-way),
idempotent replay and a reused key, refused empty and oversized batches, the same grants and
checks as one signature, log entries whose inclusion proofs verify offline, and the auditor
API listing each signature.
"""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import func, select

from common.crypto.gm import sm3
from common.db import get_db
from common.errors import Problem
from seal import signing
from seal.log.appends import SIGNATURE_LOG
from seal.log.models import LogEntry
from seal.log.tree import log_size
from seal.log.verify_offline import verify_bundle
from seal.models import Signature, SignatureBatch
from tests.seal.domain import LICENSES

PROBLEM = "application/problem+json"


def digests(n: int, tag: str = "doc") -> list[str]:
    return [sm3(f"{tag} {i}".encode()).hex() for i in range(n)]


def batch(client, seal_id, headers, items, *, key=None):
    if key:
        headers = dict(headers, **{"Idempotency-Key": key})
    return client.post(f"/seals/{seal_id}/sign-batch", json={"items": items}, headers=headers)


def counts(app) -> tuple[int, int, int]:
    """(signatures, batches, log size) in the database."""
    with get_db(app).session() as session:
        return (session.scalar(select(func.count()).select_from(Signature)),
                session.scalar(select(func.count()).select_from(SignatureBatch)), log_size(session))


@pytest.fixture
def auditor(tokens):
    return tokens.bearer(sub="auditor-1", scope="audit:read", client_id="audit-console")


def test_a_batch_signs_every_digest_in_order_each_logged_and_verifiable(client, seal_id, signer_headers):
    single = client.post(f"/seals/{seal_id}/sign", json={"digest": sm3(b"before").hex()}, headers=signer_headers)
    assert single.status_code == 201
    wanted = digests(5)
    items = [{"digest": d} for d in wanted]
    items[2]["property_info"] = "licence/2.0"
    response = batch(client, seal_id, signer_headers, items, key="batch-1")
    assert response.status_code == 201, response.get_json()
    signatures = response.get_json()["signatures"]
    assert [s["document_digest"] for s in signatures] == wanted
    assert [s["log_index"] for s in signatures] == [1, 2, 3, 4, 5]  # after the single one, in order
    assert len({s["signature_id"] for s in signatures}) == 5
    seal_code = single.get_json()["seal_code"]
    assert all(s["seal_id"] == seal_id and s["seal_code"] == seal_code for s in signatures)
    for body, digest in zip(signatures, wanted, strict=True):
        der = base64.b64decode(body["signature_base64"])
        assert sm3(der).hex() == body["signature_digest"]
        verified = client.post("/verify", json={"signature_base64": body["signature_base64"],
                                                "digest": digest}).get_json()
        assert verified["valid"] and verified["complete"], verified
        # Each one is a signature of its own, readable by its signer.
        own = client.get(f"/signatures/{body['signature_id']}", headers=signer_headers).get_json()
        assert own == body  # the batch answer (serialised directly) is what the schema dumps
    assert client.get(f"/signatures/{single.get_json()['signature_id']}", headers=signer_headers).get_json() \
        == single.get_json()
    from seal import ses

    tbs = ses.parse_signature(base64.b64decode(signatures[2]["signature_base64"]))["toSign"]
    assert tbs["propertyInfo"].native == "licence/2.0"


def test_replay_returns_the_same_signatures_and_a_reused_key_is_refused(app, client, seal_id, signer_headers):
    items = [{"digest": d} for d in digests(3)]
    first = batch(client, seal_id, signer_headers, items, key="batch-2")
    assert first.status_code == 201
    before = counts(app)
    again = batch(client, seal_id, signer_headers, items, key="batch-2")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    other = batch(client, seal_id, signer_headers, [{"digest": d} for d in digests(3, "other")], key="batch-2")
    assert other.status_code == 422 and other.mimetype == PROBLEM
    assert other.get_json()["code"] == "idempotency_key_reused"
    reordered = batch(client, seal_id, signer_headers, list(reversed(items)), key="batch-2")
    assert reordered.get_json()["code"] == "idempotency_key_reused"
    assert counts(app) == before  # nothing signed or logged by the replay or the refusals
    # Without a key, every batch signs anew.
    assert batch(client, seal_id, signer_headers, items).status_code == 201
    assert counts(app) == (before[0] + 3, before[1] + 1, before[2] + 3)


@pytest.mark.parametrize(("items", "code"), [
    ([], "batch_empty"),
    ([{"digest": d} for d in digests(4)], "batch_too_large"),
])
def test_empty_and_oversized_batches_are_refused(make_app, tokens, admin, signer_headers, items, code):
    from tests.seal.conftest import make_granted_seal

    app = make_app("seal", SEAL_SIGN_BATCH_MAX=3)
    tokens.install(app)
    client = app.test_client()
    seal_id = make_granted_seal(client, admin)
    response = batch(client, seal_id, signer_headers, items, key="k")
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert response.get_json()["code"] == code
    assert batch(client, seal_id, signer_headers, items[:3] or [{"digest": digests(1)[0]}]).status_code == 201


def test_a_bad_item_in_the_middle_signs_nothing(app, client, seal_id, signer_headers):
    before = counts(app)
    items = [{"digest": d} for d in digests(5)]
    items[2] = {"digest": "zz" * 32}
    response = batch(client, seal_id, signer_headers, items)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    items[2] = {"digest": digests(1)[0], "property_info": "合同"}  # not ASCII
    response = batch(client, seal_id, signer_headers, items)
    assert response.status_code == 422 and response.get_json()["code"] == "invalid_property_info"
    assert response.get_json()["errors"] == {"items.2.property_info": ["1–255 printable ASCII characters"]}
    assert batch(client, seal_id, signer_headers, [{"nodigest": 1}]).status_code == 422
    assert counts(app) == before


def test_same_grants_and_checks_as_one_signature(client, tokens, admin, seal_id):
    items = [{"digest": d} for d in digests(2)]
    other = tokens.bearer(sub="svc-payment", scope="seal:sign", client_id="xsn-payment")
    refused = batch(client, seal_id, other, items)
    assert refused.status_code == 403 and refused.get_json()["code"] == "seal_not_granted"
    no_scope = tokens.bearer(sub="svc-licenses", scope="seal:read", client_id="xsn-licenses")
    assert batch(client, seal_id, no_scope, items).get_json()["code"] == "insufficient_scope"
    assert batch(client, seal_id, {}, items).status_code == 401
    signer = tokens.bearer(sub="svc-licenses", scope="seal:sign", client_id="xsn-licenses")
    assert batch(client, "no-such-seal", signer, items).get_json()["code"] == "seal_not_found"
    client.post(f"/seals/{seal_id}/status", json={"action": "suspend", "reason": "年检"}, headers=admin)
    suspended = batch(client, seal_id, signer, items)
    assert suspended.status_code == 409 and suspended.get_json()["code"] == "seal_suspended"


def test_a_signer_failing_half_way_leaves_nothing(app, db, kek, seal, monkeypatch):
    real = signing.signing_material
    calls = []

    class Failing:
        def __init__(self, material):
            self.material = material

        def sign(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("the SM2 engine failed")
            return self.material.sign(*args, **kwargs)

    monkeypatch.setattr(signing, "signing_material", lambda session, row: Failing(real(session, row)))
    with pytest.raises(RuntimeError):
        signing.sign_batch(db, kek, seal.id, actor=LICENSES, items=[(sm3(b"%d" % i), "x") for i in range(5)],
                           log=SIGNATURE_LOG, idempotency_key="half")
    assert counts(app) == (0, 0, 0)


def test_a_log_failing_half_way_rolls_the_whole_batch_back(app, db, kek, seal):
    class FailingLog:
        """Appends the entries for real, then fails: the batch's transaction must undo both."""

        def append_events(self, session, items):
            SIGNATURE_LOG.append_events(session, items[:2])
            raise Problem("the log failed", code="log_failed", status=500)

    signing.sign(db, kek, seal.id, actor=LICENSES, digest=sm3(b"first"), log=SIGNATURE_LOG)
    with pytest.raises(Problem):
        signing.sign_batch(db, kek, seal.id, actor=LICENSES, items=[(sm3(b"%d" % i), "x") for i in range(4)],
                           log=FailingLog(), idempotency_key="log-fails")
    assert counts(app) == (1, 0, 1)
    # The key was not spent: the same batch succeeds afterwards, right after the first entry.
    result = signing.sign_batch(db, kek, seal.id, actor=LICENSES, items=[(sm3(b"%d" % i), "x") for i in range(4)],
                                log=SIGNATURE_LOG, idempotency_key="log-fails")
    assert not result.replayed and [s.log_index for s in result.signatures] == [1, 2, 3, 4]
    assert [s.batch_position for s in result.signatures] == [0, 1, 2, 3]


def test_log_entries_prove_offline_and_the_auditor_lists_each_signature(app, client, seal_id, signer_headers,
                                                                      auditor):
    signatures = batch(client, seal_id, signer_headers, [{"digest": d} for d in digests(6)]).get_json()["signatures"]
    keys = client.get("/log/keys", headers=auditor).get_json()["keys"]
    for body in signatures:
        bundle = client.get(f"/log/entries/{body['log_index']}", headers=auditor).get_json()
        event = bundle["entry"]["event"]
        assert (event["signature_digest"], event["document_digest"]) == (body["signature_digest"],
                                                                          body["document_digest"])
        assert bundle["entry"]["ses_signature"] == body["signature_base64"]
        key = next(k for k in keys if k["key_id"] == bundle["checkpoint"]["key_id"])
        report = verify_bundle(bundle, key["public_key_pem"])
        assert report.ok, report.to_dict()
    found = client.get(f"/log/search?seal_id={seal_id}&per_page=50", headers=auditor).get_json()
    assert found["total"] == 6
    assert sorted(e["event"]["signature_digest"] for e in found["items"]) == sorted(
        s["signature_digest"] for s in signatures)
    with get_db(app).session() as session:  # one entry per signature, in the order signed
        rows = session.execute(select(LogEntry.leaf_index, LogEntry.document_digest)
                               .order_by(LogEntry.leaf_index)).all()
    assert [(r.leaf_index, r.document_digest) for r in rows] == [(s["log_index"], s["document_digest"])
                                                                 for s in signatures]
