"""Admin/account REST API: scopes, masking, problem+json errors, no half-written rows."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from common import demo_recipients
from common.values.codes import CitizenId, CreditCode
from identity import accounts
from identity.models import Organisation, Person
from identity.seed import DEMO_ORGANISATION, DEMO_PEOPLE
from tests.support.suite import TokenFactory

CITIZEN, STAFF = DEMO_PEOPLE[0], DEMO_PEOPLE[2]
NEW_ID = CitizenId.build("610104", date(1988, 8, 18), 55).value


@pytest.fixture
def api(seeded):
    tokens = TokenFactory()
    tokens.install(seeded)
    client = seeded.test_client()

    def call(method, path, scope="", sub="svc", **kwargs):
        headers = tokens.bearer(scope=scope, sub=sub, aud="xsn:identity")
        return client.open(path, method=method, headers=headers, **kwargs)

    call.client = client
    return call


def person_id(app, entry) -> str:
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        return accounts.find_person_by_id_number(db, entry["id_number"]).id


def count(app, model) -> int:
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        return db.scalar(select(func.count()).select_from(model))


def is_problem(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == code
    assert response.json["type"] == f"urn:xsn:problem:{code}"


def test_lookup_by_id_number_masks_unless_full_scope(api):
    found = api("POST", "/api/v1/people/search", scope="identity:people:read", json={"id_number": CITIZEN["id_number"]})
    assert found.status_code == 200
    body = found.json
    assert body["name"] == CITIZEN["name"] and body["acr"] == "urn:xsn:acr:L1"
    assert body["id_number"] == CITIZEN["id_number"][:4] + "*" * 10 + CITIZEN["id_number"][-4:]
    assert body["mobile"] == "138****1234"
    full = api("POST", "/api/v1/people/search", scope="identity:people:read idcard:full phone:full",
               json={"id_number": CITIZEN["id_number"]}).json
    assert full["id_number"] == CITIZEN["id_number"] and full["mobile"] == CITIZEN["mobile"]
    assert api("GET", f"/api/v1/people/{body['id']}", scope="identity:people:read").json == body


def test_lookup_errors(api):
    is_problem(api("POST", "/api/v1/people/search", json={"id_number": CITIZEN["id_number"]}), 403,
               "insufficient_scope")
    is_problem(api.client.post("/api/v1/people/search", json={"id_number": CITIZEN["id_number"]}), 401,
               "token_missing")
    is_problem(api("POST", "/api/v1/people/search", scope="identity:people:read", json={"id_number": NEW_ID}),
               404, "person_not_found")
    bad = api("POST", "/api/v1/people/search", scope="identity:people:read", json={"id_number": "610113"})
    is_problem(bad, 422, "validation_failed")
    assert bad.json["errors"] == {"id_number": ["invalid_citizen_id"]}
    missing = api("POST", "/api/v1/people/search", scope="identity:people:read", json={})
    is_problem(missing, 422, "validation_failed")
    assert "id_number" in missing.json["errors"]
    malformed = api("POST", "/api/v1/people/search", scope="identity:people:read", data="{not json",
                    content_type="application/json")
    is_problem(malformed, 400, "malformed_json")
    is_problem(api("GET", "/api/v1/people/nope", scope="identity:people:read"), 404, "person_not_found")


def test_batch_lookup_finds_many_people_at_once_and_lists_the_unknown(seeded, api):
    citizen = person_id(seeded, CITIZEN)
    asked = [citizen, "nobody", citizen, "no-one-either"]
    masked = api("POST", "/api/v1/people/lookup", scope="identity:people:read", json={"subjects": asked})
    assert masked.status_code == 200, masked.get_data(as_text=True)
    assert masked.json == {"people": [{"id": citizen, "name": CITIZEN["name"], "mobile": "138****1234",
                                       "email": None}],
                           "unknown": ["nobody", "no-one-either"]}  # each once, in the order asked
    full = api("POST", "/api/v1/people/lookup", scope="identity:people:read phone:full", json={"subjects": asked})
    assert full.json["people"][0]["mobile"] == CITIZEN["mobile"]
    assert "id_number" not in full.json["people"][0]  # contacts only, whatever else the token may read

    people = demo_recipients.recipients()[:500]  # a whole chunk as the hub asks for it
    found = api("POST", "/api/v1/people/lookup", scope="identity:people:read phone:full email:full",
                json={"subjects": [p.subject for p in reversed(people)]}).json
    assert found["unknown"] == []
    assert [(c["id"], c["name"], c["mobile"], c["email"]) for c in found["people"]] == \
        [(p.subject, p.name, p.mobile, p.email) for p in reversed(people)]
    first = demo_recipients.recipient(0)
    masked = api("POST", "/api/v1/people/lookup", scope="identity:people:read phone:full",
                 json={"subjects": [first.subject]}).json["people"][0]
    assert (masked["mobile"], masked["email"]) == (first.mobile, "d***@example.test")  # e-mail needs email:full
    everyone_unknown = api("POST", "/api/v1/people/lookup", scope="identity:people:read",
                           json={"subjects": ["a", "b"]})
    assert everyone_unknown.status_code == 200 and everyone_unknown.json == {"people": [], "unknown": ["a", "b"]}


def test_batch_lookup_errors(seeded, api):
    subjects = {"subjects": [person_id(seeded, CITIZEN)]}
    is_problem(api("POST", "/api/v1/people/lookup", scope="identity:admin", json=subjects), 403, "insufficient_scope")
    is_problem(api.client.post("/api/v1/people/lookup", json=subjects), 401, "token_missing")
    for bad in ({}, {"subjects": []}, {"subjects": "p1"}, {"subjects": [""]}, {"subjects": [7]},
                {"subjects": ["x" * 65]}):
        refused = api("POST", "/api/v1/people/lookup", scope="identity:people:read", json=bad)
        is_problem(refused, 422, "validation_failed")
        assert "subjects" in refused.json["errors"], bad
    malformed = api("POST", "/api/v1/people/lookup", scope="identity:people:read", data="[",
                    content_type="application/json")
    is_problem(malformed, 400, "malformed_json")
    seeded.config["PEOPLE_LOOKUP_MAX"] = 3
    assert api("POST", "/api/v1/people/lookup", scope="identity:people:read",
               json={"subjects": ["a", "b", "c", "a"]}).status_code == 200  # three distinct subjects
    oversized = api("POST", "/api/v1/people/lookup", scope="identity:people:read",
                    json={"subjects": ["a", "b", "c", "d"]})
    is_problem(oversized, 413, "too_many_subjects")
    assert oversized.json["max"] == 3
    for counted_first in (["a", "b", "c", 7], ["a", "b", "c", {"sub": "d"}], ["a", "b", "c", ""]):
        # the size is judged on the raw list, before any subject is parsed or validated
        is_problem(api("POST", "/api/v1/people/lookup", scope="identity:people:read",
                       json={"subjects": counted_first}), 413, "too_many_subjects")
    is_problem(api("POST", "/api/v1/people/lookup", scope="identity:people:read", json={"subjects": ["a", 7]}),
               422, "validation_failed")  # within the limit, a malformed list is still a 422


def test_create_person_and_refuse_bad_input_without_writing(seeded, api):
    before = count(seeded, Person)
    bad = api("POST", "/api/v1/people", scope="identity:admin",
              json={"name": "新人", "id_number": NEW_ID[:-1] + "Y", "mobile": "999",
                    "email": "x@example.test\r\nBcc: y@example.test"})
    is_problem(bad, 422, "validation_failed")
    assert set(bad.json["errors"]) == {"id_number", "mobile", "email"}
    assert bad.json["errors"]["email"] == ["invalid_email"]
    assert count(seeded, Person) == before
    created = api("POST", "/api/v1/people", scope="identity:admin",
                  json={"name": "新人", "id_number": NEW_ID, "mobile": "13512345678", "assurance_level": 4,
                        "email": "Xin.Ren@Example.TEST"})
    assert created.status_code == 201 and created.json["assurance_level"] == 4
    assert created.json["email"] == "x***@example.test"  # masked: the admin token has no email:full
    full = api("GET", f"/api/v1/people/{created.json['id']}", scope="identity:people:read email:full").json
    assert full["email"] == "xin.ren@example.test" and full["mobile"] == "135****5678"
    is_problem(api("POST", "/api/v1/people", scope="identity:admin", json={"name": "重复", "id_number": NEW_ID}),
               409, "person_exists")
    assert count(seeded, Person) == before + 1
    is_problem(api("POST", "/api/v1/people", scope="identity:people:read", json={"name": "x", "id_number": NEW_ID}),
               403, "insufficient_scope")


def test_organisations_and_members(seeded, api):
    org = api("GET", f"/api/v1/organisations/{DEMO_ORGANISATION['credit_code']}", scope="identity:people:read").json
    assert org["name"] == DEMO_ORGANISATION["name"]
    assert {m["role"] for m in org["members"]} == {"legal_representative", "agent"}

    code = CreditCode.build("91610104MA6TYY001").value
    before = count(seeded, Organisation)
    is_problem(api("POST", "/api/v1/organisations", scope="identity:admin",
                   json={"credit_code": code[:-1] + ("0" if code[-1] != "0" else "1"), "name": "坏公司"}),
               422, "validation_failed")
    assert count(seeded, Organisation) == before
    created = api("POST", "/api/v1/organisations", scope="identity:admin", json={"credit_code": code, "name": "新公司"})
    assert created.status_code == 201
    again = api("POST", "/api/v1/organisations", scope="identity:admin", json={"credit_code": code, "name": "又一个"})
    is_problem(again, 409, "organisation_exists")
    linked = api("POST", f"/api/v1/organisations/{code}/members", scope="identity:admin",
                 json={"person_id": person_id(seeded, CITIZEN), "role": "agent"})
    assert linked.status_code == 201 and linked.json["members"][0]["role"] == "agent"
    is_problem(api("POST", f"/api/v1/organisations/{code}/members", scope="identity:admin",
                   json={"person_id": "nobody", "role": "agent"}), 404, "person_not_found")
    is_problem(api("POST", f"/api/v1/organisations/{code}/members", scope="identity:admin",
                   json={"person_id": person_id(seeded, CITIZEN), "role": "boss"}), 422, "validation_failed")
    is_problem(api("GET", "/api/v1/organisations/91000000000000000X", scope="identity:people:read"), 404,
               "organisation_not_found")


def test_staff_grants(seeded, api):
    pid = person_id(seeded, CITIZEN)
    granted = api("POST", f"/api/v1/people/{pid}/grants", scope="identity:admin",
                  json={"department": "西安市市场监督管理局", "role": "license_issuer",
                        "params": {"license_types": ["food_business_license"]}})
    assert granted.status_code == 201 and "licenses:issue" in granted.json["scopes"]
    listed = api("GET", f"/api/v1/people/{pid}/grants", scope="identity:people:read").json
    assert [g["role"] for g in listed] == ["license_issuer"]
    bad = api("POST", f"/api/v1/people/{pid}/grants", scope="identity:admin",
              json={"department": "财政局", "role": "payment_window", "scopes": ["seal:admin"]})
    is_problem(bad, 422, "validation_failed")
    assert bad.json["errors"] == {"scopes": ["scope_not_in_role"]}
    revoked = api("DELETE", f"/api/v1/grants/{granted.json['id']}", scope="identity:admin")
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    is_problem(api("DELETE", f"/api/v1/grants/{granted.json['id']}", scope="identity:admin"), 404, "grant_not_found")
    assert api("GET", f"/api/v1/people/{pid}/grants", scope="identity:people:read").json == []


def test_my_sessions_and_sign_out_everywhere(seeded, api, make_pages):
    browser = make_pages()
    browser.login(STAFF["id_number"])
    pid = person_id(seeded, STAFF)
    mine = api("GET", "/api/v1/me/sessions", scope="account", sub=pid)
    assert mine.status_code == 200 and len(mine.json) == 1 and mine.json[0]["amr"] == ["pwd"]
    is_problem(api("GET", "/api/v1/me/sessions", scope="account", sub="not-a-person"), 403, "not_a_person")
    is_problem(api("DELETE", "/api/v1/me/sessions/unknown", scope="account", sub=pid), 404, "session_not_found")
    other = person_id(seeded, CITIZEN)  # cannot revoke someone else's session
    is_problem(api("DELETE", f"/api/v1/me/sessions/{mine.json[0]['id']}", scope="account", sub=other), 404,
               "session_not_found")
    assert api("DELETE", "/api/v1/me/sessions", scope="account", sub=pid).json == {"revoked": 1}
    assert browser.client.get("/account").status_code == 302


def test_openapi_documents_the_api(app):
    paths = app.test_client().get("/openapi.json").json["paths"]
    assert {"/api/v1/people/search", "/api/v1/people/lookup", "/api/v1/organisations",
            "/api/v1/me/sessions"} <= set(paths)


def test_a_subject_with_a_nul_character_is_refused_not_looked_up(api):
    """PostgreSQL cannot compare text with U+0000: the lookup was a 500 there (API fuzz sweep)."""
    refused = api("POST", "/api/v1/people/lookup", scope="identity:people:read", json={"subjects": ["0", "a\x00b"]})
    is_problem(refused, 422, "validation_failed")
    assert refused.json["errors"] == {"subjects": ["must not contain the NUL character"]}
