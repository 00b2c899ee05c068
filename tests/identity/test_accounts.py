"""Account rules without HTTP: PII at rest, lookup, passwords, TOTP, lockout, levels, staff, orgs."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select, text

from common import demo_recipients
from common.db import utcnow
from common.values.codes import CitizenId, CreditCode
from identity import accounts, organisations
from identity import claims as claim_rules
from identity.models import AssuranceEvent, Person
from identity.seed import DEMO_ORGANISATION, DEMO_PASSWORD, DEMO_PEOPLE
from tests.identity.locks import another_writer_is_not_blocked

ID = CitizenId.build("610113", date(1992, 5, 17), 88).value
MOBILE = "13812345678"


def make(db, **kwargs) -> accounts.Person:
    values = {"name": "测试", "id_number": ID, "mobile": MOBILE, "password": "secret-pass-1"}
    values.update(kwargs)
    person = accounts.create_person(db, **values)
    db.commit()
    return person


def test_id_number_and_mobile_are_encrypted_at_rest(db):
    person = make(db)
    row = db.execute(text("SELECT * FROM people WHERE id = :id"), {"id": person.id}).mappings().one()
    raw = " ".join(str(v) for v in row.values())
    assert ID not in raw and ID[-8:] not in raw
    assert MOBILE not in raw and MOBILE[-6:] not in raw
    assert accounts.decrypt_id_number(db, person) == ID
    assert accounts.decrypt_mobile(db, person) == MOBILE


def test_ciphertext_is_bound_to_its_column(db):
    from common.crypto.gm import GMError

    person = make(db)
    pii = accounts.policy(db).pii
    with pytest.raises(GMError):
        pii.decrypt(accounts.MOBILE, person.id_number_enc)


def test_blind_index_lookup_normalises_input(db):
    person = make(db, id_number=ID[:-1] + ID[-1].lower())
    assert accounts.find_person_by_id_number(db, f"  {ID} ").id == person.id
    assert accounts.find_person_by_id_number(db, CitizenId.build("610113", date(1992, 5, 17), 89).value) is None
    assert accounts.find_person_by_id_number(db, "not-an-id") is None
    assert [p.id for p in accounts.find_people_by_mobile(db, "+86" + MOBILE)] == [person.id]


def test_blind_index_depends_on_the_kek():
    from common.crypto.pii import PiiCipher

    one, two = PiiCipher.from_kek(b"\x01" * 16, "identity"), PiiCipher.from_kek(b"\x02" * 16, "identity")
    assert one.index("id_number", ID) != two.index("id_number", ID)
    assert one.index("id_number", ID) != one.index("mobile", ID)  # per-field domain separation


def test_masking(db):
    person = make(db)
    assert accounts.masked_id_number(db, person) == ID[:4] + "*" * 10 + ID[-4:]
    assert accounts.masked_mobile(db, person) == "138****5678"


def test_create_person_reports_every_bad_field_and_writes_nothing(db):
    with pytest.raises(accounts.InvalidInput) as caught:
        accounts.create_person(db, name="", id_number=ID[:-1] + "0" if ID[-1] != "0" else ID[:-1] + "1",
                               mobile="12345", password="short")
    assert set(caught.value.errors) == {"name", "id_number", "mobile", "password"}
    assert caught.value.errors["id_number"] == ["invalid_citizen_id"]
    db.rollback()
    assert db.scalar(select(Person)) is None


def test_duplicate_registration_is_a_conflict(db):
    make(db)
    with pytest.raises(accounts.PersonExists):
        make(db, mobile=None)


def test_password_policy_and_argon2(db):
    person = make(db)
    assert person.password_hash.startswith("$argon2id$")
    assert "secret-pass-1" not in person.password_hash
    for weak, code in (("abc12", "password_too_short"), ("12345678", "password_too_simple"),
                       ("abcdefgh", "password_too_simple")):
        with pytest.raises(accounts.InvalidInput) as caught:
            accounts.check_password_policy(weak)
        assert caught.value.errors == {"password": [code]}


def test_authenticate_by_id_number_or_mobile(db):
    person = make(db)
    assert accounts.authenticate(db, ID, "secret-pass-1").id == person.id
    assert accounts.authenticate(db, MOBILE, "secret-pass-1").id == person.id
    with pytest.raises(accounts.InvalidCredentials):
        accounts.authenticate(db, ID, "wrong-pass-1")
    with pytest.raises(accounts.InvalidCredentials):
        accounts.authenticate(db, "13900000000", "secret-pass-1")


def test_lockout_after_max_failures_and_unlock_after_the_window(db):
    person = make(db)
    max_failures = accounts.policy(db).max_failures  # 3 in these tests
    start = utcnow()
    with freeze_time(start) as clock:
        for _ in range(max_failures - 1):
            with pytest.raises(accounts.InvalidCredentials):
                accounts.authenticate(db, ID, "wrong-pass-1")
        with pytest.raises(accounts.AccountLocked):
            accounts.authenticate(db, ID, "wrong-pass-1")
        # Locked: even the right password is refused.
        with pytest.raises(accounts.AccountLocked) as caught:
            accounts.authenticate(db, ID, "secret-pass-1")
        assert caught.value.locked_until == start + accounts.policy(db).lock_window
        clock.tick(accounts.policy(db).lock_window - timedelta(seconds=1))
        with pytest.raises(accounts.AccountLocked):
            accounts.authenticate(db, ID, "secret-pass-1")
        clock.tick(timedelta(seconds=2))
        assert accounts.authenticate(db, ID, "secret-pass-1").id == person.id
        db.refresh(person)
        assert person.failed_logins == 0 and person.locked_until is None


def test_a_right_guess_in_flight_when_others_lock_the_account_is_refused_and_keeps_the_lock(app, db, monkeypatch):
    """Wrong guesses sent beside a right one lock the account while its password is checked:
    the right one is refused and does not clear that lock."""
    from common.db import get_db
    from identity.models import Person

    person = make(db)
    db.commit()
    check = accounts.verify_password

    def checked_while_others_lock(session, who, password):
        right = check(session, who, password)
        with app.app_context(), get_db(app).session() as other:  # the other guesses' requests
            other.get(Person, who.id).locked_until = utcnow() + accounts.policy(other).lock_window
            other.commit()
        return right

    monkeypatch.setattr(accounts, "verify_password", checked_while_others_lock)
    with pytest.raises(accounts.AccountLocked):
        accounts.authenticate(db, ID, "secret-pass-1")
    another_writer_is_not_blocked(app, person.id)  # the refusal let its write lock go
    db.rollback()
    db.expire_all()
    assert db.get(Person, person.id).locked_until is not None


def test_a_success_resets_the_failure_count(db):
    make(db)
    max_failures = accounts.policy(db).max_failures
    for _ in range(3):
        for _ in range(max_failures - 1):
            with pytest.raises(accounts.InvalidCredentials):
                accounts.authenticate(db, ID, "wrong-pass-1")
        accounts.authenticate(db, ID, "secret-pass-1")


def test_change_password(db):
    person = make(db)
    with pytest.raises(accounts.InvalidCredentials):
        accounts.change_password(db, person, "wrong-pass-1", "another-pass-2")
    with pytest.raises(accounts.InvalidInput):
        accounts.change_password(db, person, "secret-pass-1", "short")
    accounts.change_password(db, person, "secret-pass-1", "another-pass-2")
    assert accounts.authenticate(db, ID, "another-pass-2").id == person.id


def test_assurance_levels_are_recorded(db):
    person = make(db)
    assert person.assurance_level == 1
    assert accounts.raise_assurance_level(db, person, 2, method="realname_register")
    assert not accounts.raise_assurance_level(db, person, 1, method="whatever")  # never lowered
    accounts.set_assurance_level(db, person, 1, method="admin_downgrade", detail="data correction")
    db.commit()
    history = [(e.from_level, e.to_level, e.method) for e in accounts.assurance_history(db, person)]
    assert history == [(1, 2, "realname_register"), (2, 1, "admin_downgrade")]
    with pytest.raises(accounts.InvalidInput):
        accounts.set_assurance_level(db, person, 5, method="x")


def test_created_above_l1_records_the_level(db):
    person = accounts.create_person(db, name="高级", id_number=ID, assurance_level=3, level_method="counter")
    db.commit()
    events = db.scalars(select(AssuranceEvent).where(AssuranceEvent.person_id == person.id)).all()
    assert [(e.from_level, e.to_level, e.method) for e in events] == [(1, 3, "counter")]


def test_grant_validation(db):
    person = make(db)
    with pytest.raises(accounts.InvalidInput) as caught:
        organisations.grant_staff_role(db, person, department="", role="emperor")
    assert set(caught.value.errors) == {"department", "role"}
    with pytest.raises(accounts.InvalidInput) as caught:
        organisations.grant_staff_role(db, person, department="财政局", role="payment_window",
                                       scopes=["audit:read"])
    assert caught.value.errors == {"scopes": ["scope_not_in_role"]}
    grant = organisations.grant_staff_role(db, person, department="财政局", role="payment_window",
                                           scopes=["payment:read"])
    assert grant.scopes == "payment:read"


def test_organisations_and_representatives(seeded, db):
    org = organisations.find_organisation(db, DEMO_ORGANISATION["credit_code"].lower())
    assert org.name == DEMO_ORGANISATION["name"]
    rep = accounts.find_person_by_id_number(db, DEMO_PEOPLE[3]["id_number"])
    agent = accounts.find_person_by_id_number(db, DEMO_PEOPLE[1]["id_number"])
    assert [(o.credit_code, role) for o, role in organisations.organisations_of(db, rep)] == [
        (org.credit_code, "legal_representative")]
    claims = claim_rules.person_claims(db, agent, {"org"})
    assert claims["organisations"] == [{"credit_code": org.credit_code, "name": org.name, "role": "agent"}]

    # One legal representative: linking another replaces the first.
    organisations.link_member(db, org, agent, organisations.LEGAL_REPRESENTATIVE)
    db.commit()
    assert organisations.organisations_of(db, rep) == []
    with pytest.raises(accounts.InvalidInput):
        organisations.link_member(db, org, agent, "owner")


def test_organisation_validation(db):
    with pytest.raises(accounts.InvalidInput) as caught:
        organisations.create_organisation(db, credit_code="91610113MA6TXX0010", name="")
    assert caught.value.errors == {"name": ["invalid_name"], "credit_code": ["invalid_credit_code"]}
    code = CreditCode.build("91610113MA6TXX002").value
    organisations.create_organisation(db, credit_code=code, name="甲公司")
    with pytest.raises(organisations.OrganisationExists):
        organisations.create_organisation(db, credit_code=code, name="乙公司")


def test_seed_is_idempotent_and_demo_passwords_work(seeded, db):
    from identity.seed import seed

    with seeded.app_context():
        seed(seeded)
    assert len(db.scalars(select(Person)).all()) == len(DEMO_PEOPLE) + demo_recipients.COUNT
    for entry in DEMO_PEOPLE:
        person = accounts.authenticate(db, entry["id_number"], DEMO_PASSWORD)
        assert person.assurance_level == entry["level"]
        assert CitizenId.parse(entry["id_number"]).region_code.startswith("6101")


def test_wrong_passwords_sent_at_once_each_count_toward_the_lock(seeded, db, monkeypatch):
    """The first failure is held after its request loaded the person (count 0) while the second
    completes: both count (the first used to write its stale count plus one)."""
    from common.db import get_db
    from identity.models import Person
    from identity.seed import DEMO_PEOPLE
    from tests.support.races import paused_after_check

    person_id = accounts.find_person_by_id_number(db, DEMO_PEOPLE[0]["id_number"]).id

    def fail():
        with seeded.app_context(), get_db(seeded).session() as own:
            accounts.record_failure(own, own.get(Person, person_id))

    paused_after_check(monkeypatch, accounts, "policy", fail, fail, get_db(seeded).engine)
    db.expire_all()
    assert db.get(Person, person_id).failed_logins == 2
