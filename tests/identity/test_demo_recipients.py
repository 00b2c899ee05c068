"""The hub demo's 1,000 recipients in identity's seed: valid, reachable, idempotent, a few statements."""

from __future__ import annotations

from sqlalchemy import func, select

from common import demo_recipients
from common.values.codes import CitizenId, MobileNumber
from identity import accounts
from identity.models import Person
from identity.seed import DEMO_PEOPLE, seed_demo_recipients
from tests.support.sql_capture import statements_sent, verbs


def test_the_list_is_deterministic_valid_and_unique():
    people = demo_recipients.recipients()
    assert len(people) == demo_recipients.COUNT == 1000
    assert people == tuple(demo_recipients.recipient(i) for i in range(1000))  # the same on every call
    for person in people:
        assert CitizenId.parse(person.id_number).value == person.id_number  # GB 11643 check digit
        assert MobileNumber.parse(person.mobile).value == person.mobile
        assert len(person.subject) == 32 and int(person.subject, 16) >= 0
    for field in ("subject", "id_number", "mobile"):
        assert len({getattr(p, field) for p in people}) == 1000, field
    assert not {p.id_number for p in people} & {p["id_number"] for p in DEMO_PEOPLE}
    kinds = {kind: sum(p.kind == kind for p in people) for kind in demo_recipients.KINDS}
    assert kinds == {"plain": 600, "no_sms": 100, "no_notice": 100, "quiet_night": 100, "quiet_day": 100}


def test_seeded_people_are_found_by_id_number_and_mobile_without_a_password(seeded, db):
    people = demo_recipients.recipients()
    for person in (people[0], people[517], people[999]):
        found = accounts.find_person_by_id_number(db, person.id_number)
        assert (found.id, found.name) == (person.subject, person.name)
        assert accounts.decrypt_mobile(db, found) == person.mobile
        assert accounts.decrypt_email(db, found) == person.email == f"demo-{person.index:04d}@example.test"
        assert found.password_hash is None  # recipients, not accounts: nobody signs in as them
        assert [p.id for p in accounts.find_people_by_mobile(db, person.mobile)] == [person.subject]


def test_a_reseed_adds_nobody_and_keeps_a_hand_registered_id_number(seeded, db):
    before = db.scalar(select(func.count()).select_from(Person))
    with statements_sent(db) as reseed:
        assert seed_demo_recipients(db) == 0
    assert verbs(reseed) == ["SELECT"] * 4  # two per 500 people, not one per person
    assert db.scalar(select(func.count()).select_from(Person)) == before

    # Someone registered a demo ID number by hand on a fresh database: they keep it.
    db.query(Person).filter(Person.id.in_([p.subject for p in demo_recipients.recipients()])).delete()
    db.commit()
    mine = demo_recipients.recipients()[3]
    accounts.create_person(db, name="自己", id_number=mine.id_number, mobile="13500000000")
    db.commit()
    with statements_sent(db) as fresh:
        assert seed_demo_recipients(db) == 999
    assert verbs(fresh) == ["SELECT"] * 4 + ["INSERT"]  # one multi-row INSERT for the 999
    assert accounts.find_person_by_id_number(db, mine.id_number).name == "自己"
    assert db.get(Person, mine.subject) is None


def test_a_reseed_gives_demo_people_seeded_before_identity_kept_e_mail_their_address(seeded, db):
    people = demo_recipients.recipients()
    db.query(Person).filter(Person.id.in_([p.subject for p in people[:10]])).update(
        {Person.email_enc: None}, synchronize_session=False)
    db.commit()
    assert seed_demo_recipients(db) == 0  # nobody added ...
    db.expire_all()
    assert [accounts.decrypt_email(db, db.get(Person, p.subject)) for p in people[:10]] == \
        [p.email for p in people[:10]]  # ... and the ten without an address have theirs back
