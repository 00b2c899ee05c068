"""Holding, authorising and verifying online: only authorised fields, every use recorded, refusals."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from common.db import get_db, utcnow
from licenses.models import Authorisation, UseRecord


@pytest.fixture
def permit(h):
    return h.issue_residence().get_json()


def _verify(h, code, headers=None):
    return h.client.post("/verify", json={"code": code}, headers=headers or h.window)


def test_holder_sees_own_licences_and_organisation_ones(h, permit):
    food = h.issue_food().get_json()
    mine = h.client.get("/my/licences", headers=h.holder("p-zhang")).get_json()
    assert [lic["id"] for lic in mine] == [permit["id"]]
    assert mine[0]["fields"]["address"] == "西安市雁塔区长安南路100号" and mine[0]["labels"]["address"] == "居住地址"
    # 李四 is an agent of the organisation: he sees its licence, not 张三's
    assert [lic["id"] for lic in h.client.get("/my/licences", headers=h.holder("p-li")).get_json()] == [food["id"]]
    assert h.client.get(f"/my/licences/{permit['id']}", headers=h.holder("p-li")).status_code == 404


def test_authorise_verify_only_the_fields_and_the_use_is_recorded(h, permit):
    auth = h.authorise(permit["id"]).get_json()
    assert len(auth["code"]) == 10 and auth["fields"] == ["address", "name"]
    result = _verify(h, auth["code"].lower())  # typed in lower case at the window
    assert result.status_code == 200, result.get_json()
    body = result.get_json()
    assert body["valid"] is True and set(body["fields"]) == {"name", "address"}
    assert "birth_date" not in body["fields"] and "id_number" not in body["fields"]
    assert all(check["ok"] for check in body["checks"].values()), body["checks"]
    assert body["licence"]["holder"]["name"] == "张*" and h.ZHANG not in str(body)
    uses = h.client.get(f"/my/licences/{permit['id']}/uses", headers=h.holder("p-zhang")).get_json()
    assert [(u["verifier"], u["outcome"], u["purpose"]) for u in uses] == [("window-app", "accepted", "办理居住登记")]


def test_the_answer_is_what_the_documented_schema_dumps(h, permit):
    """/verify renders its answer without the response schema's dump: it must be exactly what the
    schema would produce (no member outside it, the face under "fields")."""
    from licenses.schemas import VerifyResultSchema

    body = _verify(h, h.authorise(permit["id"]).get_json()["code"]).get_json()
    assert set(body) == {"valid", "checks", "purpose", "licence", "fields", "labels", "authorisation"}
    as_dumped = {**{k: v for k, v in body.items() if k != "fields"}, "face": body["fields"]}
    assert VerifyResultSchema().dump(as_dumped) == body


def test_the_holder_api_says_who_granted_and_who_revoked_an_authorisation(h):
    """An organisation's agents share its authorisations and any of them may revoke: its app is
    told who granted each and who stopped it, as the holder's pages are: by name, and whether it
    was the caller. Never the colleagues' identity subjects (data minimisation)."""
    food = h.issue_food().get_json()
    granted = h.authorise(food["id"], sub="p-li", fields=["operator_name"]).get_json()
    who = ("status", "granted_by_name", "granted_by_me", "revoked_by_name", "revoked_by_me")
    assert tuple(granted[k] for k in who) == ("active", "李四", True, None, False)
    revoked = h.client.delete(f"/my/authorisations/{granted['id']}", headers=h.holder("p-zhao"))
    assert revoked.status_code == 200
    assert tuple(revoked.get_json()[k] for k in who) == ("revoked", "李四", False, "赵六", True)
    listed = h.client.get(f"/my/licences/{food['id']}/authorisations", headers=h.holder("p-li")).get_json()
    assert [tuple(a[k] for k in who) for a in listed] == [("revoked", "李四", True, "赵六", False)]
    for body in (granted, revoked.get_json(), *listed):
        assert "granted_by" not in body and "revoked_by" not in body
        assert "p-li" not in str(body) and "p-zhao" not in str(body)


def test_the_answer_writes_dates_as_the_licence_api_does(h, permit):
    """ISO 8601, as ``GET /licences/<id>`` writes the same licence: a validity date is a date, not
    the midnight GMT an HTTP date would make of it; the authorisation's expiry an instant in UTC."""
    body = _verify(h, h.authorise(permit["id"]).get_json()["code"]).get_json()
    valid_from = body["licence"]["valid_from"]  # ``permit`` is the issuance's answer: the licence API's
    assert valid_from == permit["valid_from"] == date.fromisoformat(valid_from).isoformat()
    assert datetime.fromisoformat(body["licence"]["issued_at"]).utcoffset() == timedelta(0)
    expires = datetime.fromisoformat(body["authorisation"]["expires_at"])
    assert expires.utcoffset() == timedelta(0) and expires > datetime.now(timezone.utc)


def test_a_code_with_a_nul_is_refused_by_the_parser_not_the_database(h, permit):
    response = _verify(h, "ABCDE\u000012345".encode().decode("unicode_escape"))
    assert response.status_code == 422 and response.get_json()["code"] == "validation_failed"
    assert h.count(UseRecord) == 0


@pytest.mark.parametrize(("payload", "status", "code"), [
    ({"code": "ABCDE-12345", "extra": 1}, 422, "validation_failed"),  # webargs: unknown member
    ({"code": ""}, 422, "validation_failed"),
    ({"code": "A" * 65}, 422, "validation_failed"),  # one past the schema's Length(max=64)
    ({"code": 12345}, 422, "validation_failed"),
    ({}, 422, "validation_failed"),
    (["ABCDE-12345"], 422, "validation_failed"),
])
def test_a_body_off_the_fast_path_gets_the_schemas_errors(h, permit, payload, status, code):
    response = h.client.post("/verify", json=payload, headers=h.window)
    assert response.status_code == status and response.get_json()["code"] == code, response.get_json()
    assert h.count(UseRecord) == 0


@pytest.mark.parametrize(("data", "content_type", "status", "code"), [
    (b'{"code": NaN}', "application/json", 422, "validation_failed"),  # Python's json reads a float
    (b'{"code": "ABCDE-12345"}', "application/json; charset=utf-8", 404, "authorisation_not_found"),
    (b'{"code": "ABCDE-12345"} ', "application/json", 404, "authorisation_not_found"),
    # UTF-16: werkzeug's get_json would read it, webargs (the schema's path) does not; the fast
    # path reads bodies as webargs does, so both paths answer the same
    ('{"code": "ABCDE-12345"}'.encode("utf-16"), "application/json", 400, "malformed_json"),
])
def test_a_body_is_judged_as_webargs_reads_it(h, data, content_type, status, code):
    response = h.client.post("/verify", data=data, headers=h.window, content_type=content_type)
    assert response.status_code == status and response.get_json()["code"] == code, response.get_json()


def test_a_replayed_code_is_used_up_and_the_refusal_is_recorded(h, permit):
    code = h.authorise(permit["id"]).get_json()["code"]
    assert _verify(h, code).status_code == 200
    again = _verify(h, code)
    assert again.status_code == 410 and again.get_json()["code"] == "authorisation_used_up"
    assert again.headers["Content-Type"] == "application/problem+json"
    assert [u.outcome for u in _uses(h)] == ["accepted", "refused"]


def _uses(h):
    with get_db(h.app).session() as session:
        return list(session.scalars(select(UseRecord).order_by(UseRecord.id)))


def test_wrong_window_revoked_and_expired_authorisations(h, permit):
    code = h.authorise(permit["id"]).get_json()["code"]
    other = h.bearer(sub="other-window", client_id="other-window", scope="licenses:verify")
    response = _verify(h, code, other)
    assert response.status_code == 403 and response.get_json()["code"] == "wrong_audience"
    assert response.get_json()["checks"]["authorisation"]["ok"] is False
    # the wrong window did not consume the use
    assert _verify(h, code).status_code == 200

    revoked = h.authorise(permit["id"]).get_json()
    assert h.client.delete(f"/my/authorisations/{revoked['id']}", headers=h.holder("p-zhang")).status_code == 200
    assert _verify(h, revoked["code"]).get_json()["code"] == "authorisation_revoked"

    expired = h.authorise(permit["id"]).get_json()
    with get_db(h.app).session() as session:
        session.get(Authorisation, expired["id"]).expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert _verify(h, expired["code"]).get_json()["code"] == "authorisation_expired"
    unknown = _verify(h, "ZZZZZZZZZZ")
    assert unknown.status_code == 404 and unknown.get_json()["code"] == "authorisation_not_found"


def test_audience_by_department_of_a_staff_window(h, permit):
    code = h.authorise(permit["id"], audience=h.CIVIL).get_json()["code"]
    staff = h.bearer(sub="p-wang", client_id="window-console", scope="licenses:verify staff",
                     roles=[{"department": "西安市民政局", "role": "window", "params": {}}])
    assert _verify(h, code, staff).status_code == 200


@pytest.mark.parametrize(("action", "body", "refusal"), [
    ("revoke", {"reason": "迁出", "kind": "cancelled"}, "licence_revoked"),
    ("suspend", {"reason": "核查"}, "licence_suspended"),
])
def test_a_revoked_or_suspended_licence_never_verifies(h, permit, action, body, refusal):
    code = h.authorise(permit["id"], max_uses=5).get_json()["code"]
    h.client.post(f"/licences/{permit['id']}/status", json={"action": action, **body}, headers=h.police)
    response = _verify(h, code)
    assert response.status_code == 409 and response.get_json()["code"] == refusal
    assert response.get_json()["checks"]["seal"]["skipped"] is True
    with get_db(h.app).session() as session:
        assert session.get(Authorisation, h.client.get(
            f"/my/licences/{permit['id']}/authorisations", headers=h.holder("p-zhang")).get_json()[0]["id"]).uses == 0


def test_a_superseded_licence_never_verifies(h, permit):
    code = h.authorise(permit["id"]).get_json()["code"]
    h.client.post(f"/licences/{permit['id']}/amend", json={"fields": {"address": "新地址"}, "reason": "搬家"},
                  headers=h.police)
    assert _verify(h, code).get_json()["code"] == "licence_superseded"


def test_a_forged_seal_signature_is_refused(h, app, permit):
    from licenses.models import Licence

    code = h.authorise(permit["id"]).get_json()["code"]
    with get_db(app).session() as session:
        session.get(Licence, permit["id"]).signature_b64 = "MEUCIQ" + "A" * 90
        session.commit()
    response = _verify(h, code)
    assert response.status_code == 409 and response.get_json()["code"] == "seal_signature_invalid"
    # the refusal took no use: a use is taken only once every check has passed
    with get_db(app).session() as session:
        assert session.scalar(select(Authorisation.uses).where(Authorisation.code == code)) == 0
    assert [u.outcome for u in _uses(h)] == ["refused"]


@pytest.mark.parametrize("column", ["document_enc", "document_sm3"])
def test_an_altered_document_is_refused_after_it_verified(h, app, permit, column):
    """Documents read once are remembered by their ciphertext, not by licence: a row whose
    document (or stored digest) changed afterwards fails the document check."""
    from licenses.models import Licence

    other = h.issue_residence(fields=h.residence_fields(address="西安市碑林区1号")).get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    assert _verify(h, code).status_code == 200
    with get_db(app).session() as session:
        row = session.get(Licence, permit["id"])
        setattr(row, column, getattr(session.get(Licence, other["id"]), column))
        session.commit()
    response = _verify(h, code)
    assert response.status_code == 409 and response.get_json()["code"] == "document_altered"
    assert response.get_json()["checks"]["document"]["ok"] is False
    with get_db(app).session() as session:
        assert session.scalar(select(Authorisation.uses).where(Authorisation.code == code)) == 1


BAD_AUTH = [
    ({"fields": ["colour"]}, "invalid_authorisation"),
    ({"fields": []}, "invalid_authorisation"),
    ({"minutes": 0}, "invalid_authorisation"),
    ({"minutes": 60 * 24 * 365}, "invalid_authorisation"),
    ({"max_uses": 0}, "invalid_authorisation"),
    ({"purpose": " "}, "invalid_authorisation"),
]


@pytest.mark.parametrize(("change", "code"), BAD_AUTH)
def test_bad_authorisations_write_nothing(h, permit, change, code):
    response = h.authorise(permit["id"], **change)
    assert response.status_code == 422 and response.get_json()["code"] == code
    assert h.count(Authorisation) == 0


def test_someone_elses_licence_cannot_be_authorised(h, permit):
    response = h.authorise(permit["id"], sub="p-li")
    assert response.status_code == 404 and h.count(Authorisation) == 0
    assert h.client.get("/my/licences", headers=h.bearer(sub="stranger", scope="licenses:holder")).status_code == 403


def test_verify_needs_the_verify_scope(h, permit):
    code = h.authorise(permit["id"]).get_json()["code"]
    assert _verify(h, code, h.holder("p-zhang")).status_code == 403
    assert h.count(UseRecord) == 0


def test_qr_png_of_an_authorisation(h, permit):
    auth = h.authorise(permit["id"]).get_json()
    response = h.client.get(auth["qr_url"], headers=h.holder("p-zhang"))
    assert response.status_code == 200 and response.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_oversized_and_malformed_requests_are_problems_and_record_nothing(h, permit):
    huge = h.client.post("/verify", data=b'{"code": "' + b"A" * (2 * 1024 * 1024) + b'"}', headers=h.window,
                         content_type="application/json")
    assert huge.status_code == 413 and huge.get_json()["code"] == "payload_too_large"
    long_code = _verify(h, "A" * 65)
    assert long_code.status_code == 422 and long_code.get_json()["code"] == "validation_failed"
    broken = h.client.post("/verify", data=b"{not json", headers=h.window, content_type="application/json")
    assert broken.status_code == 400 and broken.get_json()["code"] == "malformed_json"
    big_field = h.issue_food(fields=h.food_fields(business_scope="经" * 2001))
    assert big_field.status_code == 422 and big_field.get_json()["code"] == "invalid_fields"
    assert h.count(UseRecord) == 0


@pytest.mark.parametrize("raw", ["K7M2QXW9RT", "k7m2-qxw9 rt", "ǰ2345", "straße", "", "  ", "A" * 80, "AB\u00b2C"])
def test_a_code_is_normalised_as_its_letters_and_digits_upper_cased(raw):
    from licenses.authorisations import normalise_code

    assert normalise_code(raw) == "".join(ch for ch in raw.upper() if ch.isalnum())[:64]
