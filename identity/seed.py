"""Demo data of the identity node (idempotent): citizens, an organisation, a staff member.

``DEMO_PEOPLE`` is the one list README, tests and the embedded population register use.
Every demo account's password is :data:`DEMO_PASSWORD`.
"""

from __future__ import annotations

from datetime import date

import structlog
from flask import Flask
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from common import demo_recipients
from common.db import get_db, utcnow
from common.values.codes import CitizenId, CreditCode

logger = structlog.get_logger("xsn.identity.seed")

DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - published demo credential (README)


def _id(region: str, born: date, seq: int) -> str:
    return CitizenId.build(region, born, seq).value


# Xi'an districts (GB/T 2260): 610102 新城区, 610104 莲湖区, 610113 雁塔区, 610116 长安区.
DEMO_PEOPLE: list[dict] = [
    {"name": "张三", "id_number": _id("610113", date(1990, 1, 1), 123), "mobile": "13800001234",
     "level": 1, "face_verified": True, "note": "citizen, self-registered (L1); real-name check raises to L3"},
    {"name": "李四", "id_number": _id("610102", date(1985, 6, 15), 456), "mobile": "13900005678",
     "level": 2, "face_verified": False, "note": "citizen, register-verified (L2)"},
    {"name": "王五", "id_number": _id("610104", date(1978, 3, 20), 789), "mobile": "13700009012",
     "level": 3, "face_verified": True, "note": "staff: licences, payment window, audit, identity and seal admin (L3)"},
    {"name": "赵六", "id_number": _id("610116", date(1970, 11, 2), 321), "mobile": "13600003456",
     "level": 2, "face_verified": False, "note": "legal representative of the demo organisation (L2)"},
]
DEMO_PEOPLE = [dict(p, password=DEMO_PASSWORD) for p in DEMO_PEOPLE]

# In the embedded population register but not registered: register as one of them, then verify.
DEMO_RESIDENTS: list[dict] = [
    {"name": "陈七", "id_number": _id("610113", date(1995, 8, 8), 246), "face_verified": False},
    {"name": "周八", "id_number": _id("610102", date(2000, 2, 29), 135), "face_verified": True},
]

DEMO_ORGANISATION = {"name": "西安市示范科技有限公司", "credit_code": CreditCode.build("91610113MA6TXX001").value,
                     "legal_representative": "赵六", "agents": ["李四"]}

DEMO_STAFF = {"person": "王五", "grants": [
    {"department": "西安市行政审批服务局", "role": "license_issuer",
     "params": {"license_types": ["business_license", "food_business_license"]}},
    {"department": "西安市财政局", "role": "payment_window", "params": {"windows": ["雁塔区政务服务中心"]}},
    {"department": "西安市数据局", "role": "auditor", "params": {}},
    {"department": "西安市数据局", "role": "identity_admin", "params": {}},
    {"department": "西安市数据局", "role": "seal_admin", "params": {}},
    {"department": "西安市行政审批服务局", "role": "license_admin", "params": {}},
    {"department": "西安市财政局", "role": "payment_admin", "params": {}},
    {"department": "西安市数据局", "role": "messaging_admin", "params": {}},
]}


def seed(app: Flask) -> None:
    from identity import accounts, organisations

    with get_db(app).session() as session:
        people = {}
        for entry in DEMO_PEOPLE:
            person = accounts.find_person_by_id_number(session, entry["id_number"])
            if person is None:
                person = accounts.create_person(session, name=entry["name"], id_number=entry["id_number"],
                                                mobile=entry["mobile"], password=entry["password"],
                                                assurance_level=entry["level"], level_method="seed")
            people[entry["name"]] = person
        org = organisations.find_organisation(session, DEMO_ORGANISATION["credit_code"])
        if org is None:
            org = organisations.create_organisation(session, credit_code=DEMO_ORGANISATION["credit_code"],
                                                    name=DEMO_ORGANISATION["name"])
        organisations.link_member(session, org, people[DEMO_ORGANISATION["legal_representative"]],
                                  organisations.LEGAL_REPRESENTATIVE)
        for agent in DEMO_ORGANISATION["agents"]:
            organisations.link_member(session, org, people[agent], organisations.AGENT)
        staff = people[DEMO_STAFF["person"]]
        held = {g.role for g in organisations.active_grants(session, staff)}
        for grant in DEMO_STAFF["grants"]:
            if grant["role"] not in held:
                organisations.grant_staff_role(session, staff, **grant)
        session.commit()
        added = seed_demo_recipients(session)
    logger.info("identity_seeded", people=len(DEMO_PEOPLE), demo_recipients_added=added)
    from identity.oauth import seed as oauth_seed  # demo OAuth clients and signing keys (the OAuth part)

    oauth_seed.seed(app)


# Encrypted demo rows by key (the blind index of the first demo ID number names the KEK without
# holding it): every test that seeds identity seeds these 1,000 people, and encrypting them is
# most of the cost; the ciphertexts are of published demo data.
_DEMO_ROWS: dict[str, list[dict]] = {}


def _demo_rows(session: Session) -> list[dict]:
    from identity.accounts import EMAIL, ID_NUMBER, MOBILE, policy

    pii = policy(session).pii
    wanted = demo_recipients.recipients()
    key = pii.index(ID_NUMBER, wanted[0].id_number)
    if key not in _DEMO_ROWS:
        _DEMO_ROWS[key] = [{"id": r.subject, "name": r.name, "id_number_enc": pii.encrypt(ID_NUMBER, r.id_number),
                            "id_number_index": pii.index(ID_NUMBER, r.id_number),
                            "mobile_enc": pii.encrypt(MOBILE, r.mobile), "mobile_index": pii.index(MOBILE, r.mobile),
                            "email_enc": pii.encrypt(EMAIL, r.email),
                            "assurance_level": 1, "failed_logins": 0} for r in wanted]
    return _DEMO_ROWS[key]


def seed_demo_recipients(session: Session) -> int:
    """Register the hub demo's 1,000 recipients (``common.demo_recipients``) that are missing (commit).

    They are recipients, not accounts: no password (identity allows that: a person registered
    at a counter sets one by reset), so no argon2 hash is computed at all. Two SELECTs per 500
    find who is there already and one multi-row INSERT adds the rest, with their fixed subjects;
    the encryption and blind indexes are the same ``PiiCipher`` calls ``create_person`` makes,
    done once per process and key. A re-seed (every ``make run``) costs the SELECTs.
    """
    from identity.models import Person

    rows = _demo_rows(session)
    present: set[str] = set()
    no_email: set[str] = set()
    for start in range(0, len(rows), 500):
        chunk = rows[start:start + 500]
        for person_id, email_enc in session.execute(select(Person.id, Person.email_enc)
                                                    .where(Person.id.in_([r["id"] for r in chunk]))):
            present.add(person_id)
            if email_enc is None:  # seeded before identity kept e-mail addresses (identity_0006)
                no_email.add(person_id)
        # Someone registered one of these ID numbers by hand: keep that person, skip the demo row.
        taken = set(session.scalars(select(Person.id_number_index)
                                    .where(Person.id_number_index.in_([r["id_number_index"] for r in chunk]))))
        present.update(r["id"] for r in chunk if r["id_number_index"] in taken)
    now = utcnow()
    missing = [{**r, "created_at": now, "updated_at": now} for r in rows if r["id"] not in present]
    if missing:
        session.execute(insert(Person), missing)
    if no_email:  # one executemany UPDATE by primary key, once per database
        session.execute(update(Person), [{"id": r["id"], "email_enc": r["email_enc"]} for r in rows
                                         if r["id"] in no_email])
    session.commit()
    return len(missing)
