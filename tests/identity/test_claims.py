"""OIDC claims and staff scopes (identity.claims)."""

from __future__ import annotations

from identity import accounts, organisations
from identity import claims as claim_rules
from identity.seed import DEMO_PEOPLE
from tests.identity.test_accounts import ID, MOBILE, make


def test_one_disclosure_rule_for_every_kind_of_personal_data():
    for kind, value, full, masked in (("mobile", "13812345678", "phone:full", "138****5678"),
                                      ("email", "dora@example.test", "email:full", "d***@example.test"),
                                      ("id_number", ID, "idcard:full", ID[:4] + "*" * 10 + ID[-4:])):
        assert claim_rules.disclosed(kind, value, {full, "openid"}) == value
        assert claim_rules.disclosed(kind, value, ["identity:people:read", kind]) == masked
        assert claim_rules.disclosed(kind, None, {full}) is None and claim_rules.disclosed(kind, "", set()) is None
    assert claim_rules.disclosed("mobile", "13812345678", {"email:full", "idcard:full"}) == "138****5678"


def test_claims_by_scope_and_masking(db):
    person = make(db)
    base = claim_rules.person_claims(db, person, {"openid"})
    assert base == {"sub": person.id, "acr": "urn:xsn:acr:L1", "assurance_level": 1}
    claims = claim_rules.person_claims(db, person, {"openid", "profile", "phone", "idcard"})
    assert claims["name"] == "测试"
    assert claims["phone_number"] == "138****5678"
    assert claims["id_number"] == ID[:4] + "*" * 10 + ID[-4:]
    full = claim_rules.person_claims(db, person, {"phone:full", "idcard:full"})
    assert full["phone_number"] == MOBILE and full["id_number"] == ID
    assert "email" not in claims and "email" not in claim_rules.person_claims(db, person, {"email"})  # none set


def test_email_claim_is_masked_unless_full_and_never_verified(db):
    person = make(db)
    accounts.update_email(db, person, "Ce.Shi@Example.TEST")
    claims = claim_rules.person_claims(db, person, {"openid", "email"})
    assert (claims["email"], claims["email_verified"]) == ("c***@example.test", False)
    full = claim_rules.person_claims(db, person, {"email:full"})
    assert (full["email"], full["email_verified"]) == ("ce.shi@example.test", False)
    accounts.update_email(db, person, None)
    assert "email" not in claim_rules.person_claims(db, person, {"email:full"})


def test_staff_scopes_and_claims(seeded, db):
    staff = accounts.find_person_by_id_number(db, DEMO_PEOPLE[2]["id_number"])
    assert claim_rules.staff_scopes(db, staff) >= {"licenses:issue", "payment:window", "audit:read", "seal:use"}
    claims = claim_rules.person_claims(db, staff, {"staff"})
    issuer = next(s for s in claims["staff"] if s["role"] == "license_issuer")
    assert issuer["params"]["license_types"] == ["business_license", "food_business_license"]
    citizen = accounts.find_person_by_id_number(db, DEMO_PEOPLE[0]["id_number"])
    assert claim_rules.staff_scopes(db, citizen) == set()

    grant = next(g for g in organisations.active_grants(db, staff) if g.role == "payment_window")
    organisations.revoke_grant(db, grant.id)
    db.commit()
    assert "payment:window" not in claim_rules.staff_scopes(db, staff)
