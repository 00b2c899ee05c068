"""Issuing: identifier, document, seal, idempotency, seal-node failure, bad input."""

from __future__ import annotations

import base64
import json

import pytest
import rfc8785

from common.crypto.gm import sm3
from common.values.codes import LicenseIdentifier
from licenses.models import Licence, LicenceEvent, Notification


def test_issue_makes_a_sealed_licence_with_a_gb36904_identifier(h, node):
    response = h.issue_food(key="k-1")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    identifier = LicenseIdentifier(body["identifier"])
    assert identifier.type_code == h.FOOD and identifier.issuer_code == h.BUREAU and identifier.version == 1
    assert body["face_number"].startswith("JY1") and body["status"] == "valid"
    assert body["holder"]["code"] != h.ORG and body["holder"]["code"].endswith(h.ORG[-4:])
    # the sealed document is RFC 8785 JSON of the metadata and face; the seal signed its SM3
    row_doc = h.client.get(f"/licences/{body['id']}", headers=h.issuer).get_json()
    assert row_doc["document_sm3"] == body["document_sm3"]
    signature = node["deps"].seal.signed["licence:" + body["id"]]
    assert node["deps"].seal.verify(signature.signature_b64, body["document_sm3"]).valid


def test_the_document_is_canonical_and_names_everything(h, app, node):
    body = h.issue_food().get_json()
    from common.db import get_db
    from licenses.issuing import document_of

    with get_db(app).session() as session:
        row = session.get(Licence, body["id"])
        raw = document_of(node["deps"], row)
    document = json.loads(raw)
    assert rfc8785.dumps(document) == raw and sm3(raw).hex() == body["document_sm3"]
    assert document["holder"] == {"kind": "organisation", "name": "西安市示范科技有限公司", "code": h.ORG,
                                  "code_type": "001"}
    assert document["identifier"] == body["identifier"] and document["fields"]["business_scope"] == "热食类食品制售"


def test_serials_and_identifiers_are_unique(h):
    identifiers = {h.issue_food().get_json()["identifier"] for _ in range(3)}
    assert len(identifiers) == 3


def test_replay_with_the_same_key_returns_the_same_licence(h, node):
    first = h.issue_food(key="same")
    second = h.issue_food(key="same")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.get_json()["identifier"] == second.get_json()["identifier"]
    assert h.count(Licence) == 1 and len(node["deps"].seal.signed) == 1


def test_same_key_other_request_is_refused(h):
    assert h.issue_food(key="k").status_code == 201
    response = h.issue_food(key="k", fields=h.food_fields(premises="别处"))
    assert response.status_code == 422 and response.get_json()["code"] == "idempotency_key_reused"
    assert h.count(Licence) == 1


def test_seal_node_failure_leaves_nothing_visible_and_a_retry_completes_it(h, node):
    node["deps"].seal.fail_next = 1
    failed = h.issue_food(key="retry-1")
    assert failed.status_code == 503 and failed.get_json()["code"] == "seal_unavailable"
    assert failed.headers["Content-Type"] == "application/problem+json"
    assert h.client.get("/licences", headers=h.issuer).get_json() == []
    assert h.client.get("/my/licences", headers=h.holder("p-zhao")).get_json() == []
    retried = h.issue_food(key="retry-1")
    assert retried.status_code == 201
    assert h.count(Licence) == 1 and len(node["deps"].seal.signed) == 1
    assert len(h.client.get("/licences", headers=h.issuer).get_json()) == 1


def test_the_holder_is_notified_through_the_outbox(h, app, node):
    h.client.get("/my/licences", headers=h.holder("p-zhang"))  # the person is now known to this node
    response = h.issue_residence(notify=[{"phone": "13800001234"}])
    assert response.status_code == 201
    assert node["notifier"].sent == []  # sent once the response has gone out (a server closes it)
    response.close()
    sent = node["notifier"].sent
    assert [m["template"] for m in sent] == ["licence_issued"]
    assert {"subject": "p-zhang"} in sent[0]["recipients"] and {"phone": "13800001234"} in sent[0]["recipients"]
    assert sent[0]["variables"]["face_number"] == response.get_json()["face_number"]
    assert h.count(Notification) == 1


def test_a_hub_outage_keeps_the_message_for_the_sweeper(h, app, node):
    import licenses

    node["notifier"].fail = True
    response = h.issue_residence(notify=[{"phone": "13800001234"}])
    assert response.status_code == 201
    response.close()
    assert node["notifier"].sent == []
    node["notifier"].fail = False
    assert licenses.deliver_notifications(app) == 1
    assert len(node["notifier"].sent) == 1


def test_staff_issue_through_their_grant(h):
    staff = h.bearer(sub="p-wang", client_id="xsn-console", scope="licenses:issue staff",
                     roles=[{"department": "西安市行政审批服务局", "role": "license_issuer",
                             "params": {"license_types": ["food_business_license"]}}])
    assert h.issue_food(headers=staff).status_code == 201
    # the grant does not cover residence permits, and the bureau may not issue them anyway
    response = h.issue_residence(headers=staff)
    assert response.status_code == 403 and response.get_json()["code"] == "issuer_not_allowed"


def test_signature_is_stored_and_downloadable(h):
    body = h.issue_residence().get_json()
    response = h.client.get(f"/my/licences/{body['id']}/signature", headers=h.holder("p-zhang"))
    assert response.status_code == 200 and len(base64.b64encode(response.data)) > 0
    document = h.client.get(f"/my/licences/{body['id']}/document", headers=h.holder("p-zhang"))
    assert sm3(document.data).hex() == body["document_sm3"]


BAD = [
    ("unknown type", {"type_code": "11100000MB0X00010999"}, 404, "unknown_licence_type"),
    ("unknown type slug", {"type_code": "no_such_type"}, 404, "unknown_licence_type"),
    ("missing field", {"fields": {"operator_name": "x"}}, 422, "invalid_fields"),
    ("wrong enum", {"fields": "override:business_type=超市"}, 422, "invalid_fields"),
    ("unknown field", {"fields": "override:colour=red"}, 422, "invalid_fields"),
    ("bad credit code", {"holder_code": "91610113MA6TXX0010"}, 422, "invalid_credit_code"),
    ("citizen id for an organisation type", {"holder_code": "11010519491231002X"}, 422, "invalid_credit_code"),
    ("empty holder name", {"holder_name": "  "}, 422, "invalid_holder"),
    ("validity reversed", {"valid_from": "2026-01-10", "valid_until": "2026-01-01"}, 422, "invalid_validity"),
    ("fields not an object", {"fields": ["a"]}, 422, "validation_failed"),
]


@pytest.mark.parametrize(("case", "change", "status", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_problem_and_writes_nothing(h, case, change, status, code):
    if isinstance(change.get("fields"), str):
        name, _, value = change["fields"].removeprefix("override:").partition("=")
        change = {"fields": h.food_fields(**{name: value})}
    response = h.issue_food(key=f"bad-{case}", **change)
    assert response.status_code == status, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.get_json()["code"] == code
    assert h.count(Licence) == 0 and h.count(LicenceEvent) == 0


def test_invalid_citizen_id_and_wrong_issuer(h):
    wrong_check = h.ZHANG[:17] + ("0" if h.ZHANG[17] != "0" else "1")
    response = h.issue_residence(holder_code=wrong_check)
    assert response.status_code == 422 and response.get_json()["code"] == "invalid_citizen_id"
    response = h.issue_residence(headers=h.issuer)  # the approval bureau may not issue residence permits
    assert response.status_code == 403 and response.get_json()["code"] == "issuer_not_allowed"
    unmapped = h.bearer(sub="someone", client_id="someone", scope="licenses:issue")
    assert h.issue_food(headers=unmapped).get_json()["code"] == "issuer_not_allowed"
    assert h.issue_food(headers=h.window).status_code == 403
    assert h.count(Licence) == 0


def test_a_department_without_a_seal_is_refused_before_anything_is_written(h, node):
    node["deps"].seal.refuse.add(h.BUREAU)
    response = h.issue_food(key="no-seal")
    assert response.status_code == 409 and response.get_json()["code"] == "no_seal_for_issuer"
    assert h.count(Licence) == 0


def test_concurrent_requests_with_one_key_make_one_licence(h, app, node, monkeypatch):
    """Two requests race past the idempotency lookup; the loser's insert fails on the unique key
    and it continues with the winner's licence instead of answering 500."""
    from common.db import get_db
    from licenses import issuing

    real = issuing._earlier
    calls = []

    def first_sees_nothing(session, issuer, req, checked):
        calls.append(1)
        if len(calls) == 1:  # as if the other request had not committed yet
            with get_db(app).session() as other:
                issuing.issue(other, node["deps"], issuer, req)
            return None
        return real(session, issuer, req, checked)

    monkeypatch.setattr(issuing, "_earlier", first_sees_nothing)
    response = h.issue_food(key="race")
    assert response.status_code == 200, response.get_json()
    assert h.count(Licence) == 1 and len(node["deps"].seal.signed) == 1


@pytest.mark.parametrize("document", [
    {"b": "西安市", "a": 1, "c": None, "d": [True, False, {"z": "\u2028\u007f"}], "e": -(2**53 - 1)},
    {"controls": "".join(chr(c) for c in range(32)) + "\"\\/", "emoji": "证照\U0001F600", "": "empty key"},
    {"€": 1, "a": 2, "\ue000": 3, "ÿ": 4},  # non-ASCII keys below U+D800 and one above (rfc8785 path)
    {"big": 2**53},  # beyond the safe integers: the rfc8785 package decides (it refuses)
    {"lone": "\ud800"},  # a lone surrogate: the rfc8785 package decides
    {"fields": {"registered_capital": 500, "name": "示范\t公司\n"}, "version": 1},
])
def test_canonical_is_rfc8785(document):
    import rfc8785

    from licenses.issuing import canonical

    try:
        expected = rfc8785.dumps(document)
    except Exception as exc:  # noqa: BLE001 - whatever the reference refuses, ours refuses alike
        with pytest.raises(type(exc)):
            canonical(document)
        return
    assert canonical(document) == expected


def test_canonical_random_documents_match_rfc8785():
    import random

    import rfc8785

    from licenses.issuing import canonical

    rng = random.Random(11)
    alphabet = [chr(c) for c in (*range(0, 0x80), 0x7f, 0x2028, 0x897f, 0x5b89, 0xe000, 0xffff, 0x1f600)]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

    def value(depth: int):
        kind = rng.randint(0, 6 if depth < 3 else 3)
        if kind == 0:
            return text()
        if kind == 1:
            return rng.randint(-(2**53 - 1), 2**53 - 1)
        if kind == 2:
            return rng.choice([None, True, False])
        if kind == 3:
            return rng.randint(-1000, 1000)
        if kind in (4, 5):
            return {text(): value(depth + 1) for _ in range(rng.randint(0, 5))}
        return [value(depth + 1) for _ in range(rng.randint(0, 4))]

    for _ in range(500):
        document = {text(): value(0) for _ in range(rng.randint(1, 8))}
        assert canonical(document) == rfc8785.dumps(document)
