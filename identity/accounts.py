"""Natural persons: registration, passwords, TOTP, lockout, assurance levels, OIDC claims.

Flask-free: every function takes a SQLAlchemy session whose ``info["identity"]`` holds the
:class:`AccountPolicy` (keys and limits), installed by the app factory on the session maker
(see :func:`install_policy`). Functions named ``create_*``/``set_*`` flush; those named after
a whole use case (``register``, ``change_password``, ``authenticate``...) commit.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from common.crypto.pii import PiiCipher, mask_email, mask_id_number, mask_mobile
from common.db import begin_write, utcnow
from common.errors import Conflict, Problem
from common.values.codes import CitizenId, InvalidCode, MobileNumber
from common.values.email import parse_email as _parse_email
from identity.errors import InvalidInput
from identity.models import AssuranceEvent, Person

LEVELS = (1, 2, 3, 4)
ID_NUMBER, MOBILE, EMAIL, TOTP = "id_number", "mobile", "email", "totp"
MIN_PASSWORD, MAX_PASSWORD = 8, 128


@dataclass
class AccountPolicy:
    """Keys and limits the account rules need; one per app."""

    pii: PiiCipher
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    max_failures: int = 5
    lock_window: timedelta = timedelta(minutes=15)
    totp_issuer: str = "西安统一身份认证"
    # Verifying against this keeps the time of "no such account" equal to "wrong password".
    dummy_hash: str = ""

    def __post_init__(self) -> None:
        if not self.dummy_hash:
            self.dummy_hash = self.hasher.hash(secrets.token_hex(8))


def install_policy(sessionmaker, policy: AccountPolicy) -> None:
    sessionmaker.configure(info={"identity": policy})


def policy(session: Session) -> AccountPolicy:
    try:
        return session.info["identity"]
    except KeyError:
        raise RuntimeError("the session has no identity AccountPolicy; see install_policy") from None


# --- errors ------------------------------------------------------------------------------------


class PersonExists(Conflict):
    code, title = "person_exists", "A person with this ID number is already registered"


class InvalidCredentials(Problem):
    status, code, title = 401, "invalid_credentials", "Wrong account or password"


class AccountLocked(Problem):
    status, code, title = 423, "account_locked", "Account temporarily locked after repeated failures"

    def __init__(self, locked_until) -> None:
        super().__init__(locked_until=locked_until.isoformat())
        self.locked_until = locked_until


class InvalidTotp(Problem):
    status, code, title = 401, "invalid_totp", "Wrong or reused one-time code"


# --- personal data -----------------------------------------------------------------------------


def parse_id_number(raw: str) -> str:
    """:raise InvalidInput: not a GB 11643 number."""
    try:
        return CitizenId.parse(raw).value
    except InvalidCode as exc:
        raise InvalidInput({ID_NUMBER: [exc.code]}) from None


def parse_mobile(raw: str) -> str:
    """:raise InvalidInput: not a mainland mobile number."""
    try:
        return MobileNumber.parse(raw).value
    except InvalidCode as exc:
        raise InvalidInput({MOBILE: [exc.code]}) from None


def parse_email(raw: str) -> str:
    """:raise InvalidInput: not one plain e-mail address."""
    try:
        return _parse_email(raw)
    except InvalidCode as exc:
        raise InvalidInput({EMAIL: [exc.code]}) from None


def decrypt_id_number(session: Session, person: Person) -> str:
    return policy(session).pii.decrypt(ID_NUMBER, person.id_number_enc)


def decrypt_mobile(session: Session, person: Person) -> str | None:
    if person.mobile_enc is None:
        return None
    return policy(session).pii.decrypt(MOBILE, person.mobile_enc)


def decrypt_email(session: Session, person: Person) -> str | None:
    if person.email_enc is None:
        return None
    return policy(session).pii.decrypt(EMAIL, person.email_enc)


def masked_email(session: Session, person: Person) -> str | None:
    address = decrypt_email(session, person)
    return mask_email(address) if address else None


def _set_email(session: Session, person: Person, email: str | None) -> None:
    person.email_enc = policy(session).pii.encrypt(EMAIL, email) if email else None


def masked_id_number(session: Session, person: Person) -> str:
    return mask_id_number(decrypt_id_number(session, person))


def masked_mobile(session: Session, person: Person) -> str | None:
    mobile = decrypt_mobile(session, person)
    return mask_mobile(mobile) if mobile else None


def _set_mobile(session: Session, person: Person, mobile: str | None) -> None:
    pii = policy(session).pii
    person.mobile_enc = pii.encrypt(MOBILE, mobile) if mobile else None
    person.mobile_index = pii.index(MOBILE, mobile) if mobile else None


# --- lookup and creation -----------------------------------------------------------------------


def get_person(session: Session, person_id: str) -> Person | None:
    return session.get(Person, person_id)


def get_people(session: Session, person_ids: list[str]) -> list[Person]:
    """The people among ``person_ids`` that exist, in one query (order not kept; the caller maps
    by id). Staff grants are not loaded unless asked for (a contact lookup needs none)."""
    if not person_ids:
        return []
    return list(session.scalars(select(Person).where(Person.id.in_(set(person_ids))).options(lazyload(Person.grants))))


def find_person_by_id_number(session: Session, id_number: str) -> Person | None:
    """Blind-index lookup; an invalid number simply finds nobody."""
    try:
        canonical = CitizenId.parse(id_number).value
    except InvalidCode:
        return None
    digest = policy(session).pii.index(ID_NUMBER, canonical)
    return session.scalar(select(Person).where(Person.id_number_index == digest))


def find_people_by_mobile(session: Session, mobile: str) -> list[Person]:
    try:
        canonical = MobileNumber.parse(mobile).value
    except InvalidCode:
        return []
    digest = policy(session).pii.index(MOBILE, canonical)
    return list(session.scalars(select(Person).where(Person.mobile_index == digest)))


def check_password_policy(password: str) -> None:
    """:raise InvalidInput: ``password_too_short`` / ``password_too_long`` / ``password_too_simple``."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput({"password": ["password_too_short"]})
    if len(password) > MAX_PASSWORD:
        raise InvalidInput({"password": ["password_too_long"]})
    if password.isdigit() or password.isalpha():
        raise InvalidInput({"password": ["password_too_simple"]})


def validate_name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 64 or any(c in name for c in "<>\"'&\r\n\t"):
        raise InvalidInput({"name": ["invalid_name"]})
    return name


def person_field_errors(*, name: str, id_number: str, mobile: str | None,
                        password: str | None, email: str | None = None) -> dict[str, list[str]]:
    """Every field error of a would-be person at once (no database access)."""
    errors: dict[str, list[str]] = {}
    for check in (lambda: validate_name(name), lambda: parse_id_number(id_number),
                  lambda: parse_mobile(mobile) if mobile else None,
                  lambda: parse_email(email) if email else None,
                  lambda: check_password_policy(password) if password is not None else None):
        try:
            check()
        except InvalidInput as exc:
            errors.update(exc.errors)
    return errors


def create_person(session: Session, *, name: str, id_number: str, mobile: str | None = None,
                  password: str | None = None, assurance_level: int = 1,
                  level_method: str = "registration", email: str | None = None) -> Person:
    """Add a person (flush, no commit).

    :raise InvalidInput: bad name, ID number, mobile, e-mail, password or level (all errors at once).
    :raise PersonExists: the ID number is already registered.
    """
    errors = person_field_errors(name=name, id_number=id_number, mobile=mobile, password=password, email=email)
    if assurance_level not in LEVELS:
        errors["assurance_level"] = ["invalid_level"]
    if errors:
        raise InvalidInput(errors)
    canonical = parse_id_number(id_number)
    pii = policy(session).pii
    if find_person_by_id_number(session, canonical) is not None:
        raise PersonExists()
    person = Person(name=validate_name(name), id_number_enc=pii.encrypt(ID_NUMBER, canonical),
                    id_number_index=pii.index(ID_NUMBER, canonical), assurance_level=1, failed_logins=0)
    _set_mobile(session, person, parse_mobile(mobile) if mobile else None)
    _set_email(session, person, parse_email(email) if email else None)
    if password is not None:
        person.password_hash = policy(session).hasher.hash(password)
    session.add(person)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent registration of the same ID number won the race
        raise PersonExists() from None
    if assurance_level > 1:
        set_assurance_level(session, person, assurance_level, method=level_method)
    return person


def register(session: Session, *, name: str, id_number: str, mobile: str | None, password: str,
             email: str | None = None) -> Person:
    """Self-registration at L1. :raise InvalidInput: :raise PersonExists:"""
    person = create_person(session, name=name, id_number=id_number, mobile=mobile, password=password, email=email)
    session.commit()
    return person


def update_mobile(session: Session, person: Person, mobile: str | None) -> None:
    """:raise InvalidInput:"""
    _set_mobile(session, person, parse_mobile(mobile) if mobile else None)
    session.commit()


def update_email(session: Session, person: Person, email: str | None) -> None:
    """Set, change or (empty) clear the address; not verified (no verification flow yet). :raise InvalidInput:"""
    _set_email(session, person, parse_email(email) if email else None)
    session.commit()


# --- assurance levels (可信等级) -----------------------------------------------------------------


def set_assurance_level(session: Session, person: Person, level: int, *, method: str,
                        detail: str | None = None) -> bool:
    """Record a level change (flush). Returns whether the level changed. :raise InvalidInput:"""
    if level not in LEVELS:
        raise InvalidInput({"assurance_level": ["invalid_level"]})
    if level == person.assurance_level:
        return False
    session.add(AssuranceEvent(person_id=person.id, from_level=person.assurance_level, to_level=level,
                               method=method, detail=detail))
    person.assurance_level = level
    session.flush()
    return True


def raise_assurance_level(session: Session, person: Person, level: int, *, method: str,
                          detail: str | None = None) -> bool:
    """Raise (never lower) the level; lowering needs an explicit :func:`set_assurance_level`."""
    if level <= person.assurance_level:
        return False
    return set_assurance_level(session, person, level, method=method, detail=detail)


def assurance_history(session: Session, person: Person) -> list[AssuranceEvent]:
    return list(session.scalars(select(AssuranceEvent).where(AssuranceEvent.person_id == person.id)
                                .order_by(AssuranceEvent.id)))


# --- passwords and lockout ---------------------------------------------------------------------


def check_lock(person: Person) -> None:
    if person.locked_until is not None and person.locked_until > utcnow():
        raise AccountLocked(person.locked_until)


def record_failure(session: Session, person: Person) -> None:
    """Count a failed check against ``person`` and lock the account at the policy's limit (commit).

    The count is read under the lock: wrong guesses sent in parallel each count (read unlocked,
    each request added one to the same old count, and a guesser spreading guesses over
    concurrent requests was never locked out).
    """
    rules = policy(session)
    session.flush()
    begin_write(session)
    session.refresh(person, with_for_update=True)
    if person.locked_until is not None and person.locked_until <= utcnow():
        person.locked_until = None
        person.failed_logins = 0
    person.failed_logins = (person.failed_logins or 0) + 1
    if person.failed_logins >= rules.max_failures:
        person.locked_until = utcnow() + rules.lock_window
        person.failed_logins = 0
    session.commit()


def _burn_time(session: Session, password: str | None) -> None:
    """Hash work equal to a real check, so timing does not reveal whether an account exists."""
    rules = policy(session)
    with contextlib.suppress(VerificationError, InvalidHashError):
        rules.hasher.verify(rules.dummy_hash, (password or "") + "\x00")


def verify_password(session: Session, person: Person, password: str) -> bool:
    """Constant-ish time check; transparently upgrades the hash when parameters changed."""
    hasher = policy(session).hasher
    if not person.password_hash:  # e.g. a person created by federation: no local password
        _burn_time(session, password)
        return False
    try:
        hasher.verify(person.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if hasher.check_needs_rehash(person.password_hash):
        person.password_hash = hasher.hash(password)
    return True


def find_login_account(session: Session, login: str) -> Person | None:
    """The person an ID number or (unambiguous) mobile number names."""
    login = (login or "").strip()
    person = find_person_by_id_number(session, login)
    if person is None and login:
        people = find_people_by_mobile(session, login)
        person = people[0] if len(people) == 1 else None
    return person


def authenticate(session: Session, login: str, password: str) -> Person:
    """First factor. A locked account is refused even with the right password.

    :raise InvalidCredentials: unknown account or wrong password (counted per account).
    :raise AccountLocked: too many failures within the lock window.
    """
    person = find_login_account(session, login)
    if person is None:
        _burn_time(session, password)
        raise InvalidCredentials()
    check_lock(person)
    if not verify_password(session, person, password or ""):
        record_failure(session, person)
        check_lock(person)
        raise InvalidCredentials()
    check_lock_under_write(session, person)
    person.failed_logins = 0
    person.locked_until = None
    session.commit()
    return person


def check_lock_under_write(session: Session, person: Person) -> None:
    """Before a right guess (password or TOTP code) clears the failure count: the person's row
    read again under the write lock, and refused if locked. Wrong guesses sent beside this one
    may have locked the account while it was being checked, and a right guess then must neither
    pass nor clear that lock (else the limit is the failures plus however many guesses are in
    flight).

    :raise AccountLocked: locked meanwhile; the write lock is let go first.
    """
    session.flush()
    begin_write(session)
    session.refresh(person, with_for_update=True)
    try:
        check_lock(person)
    except AccountLocked:
        # The write lock (SQLite's one, or the row's) goes now, not when the request is torn
        # down after its refusal has been rendered: every other writer waits for it meanwhile.
        session.rollback()
        raise


def change_password(session: Session, person: Person, old: str, new: str) -> None:
    """:raise InvalidCredentials: wrong current password. :raise InvalidInput: weak new one."""
    if not verify_password(session, person, old or ""):
        record_failure(session, person)
        raise InvalidCredentials()
    set_password(session, person, new)
    session.commit()


def set_password(session: Session, person: Person, new: str) -> None:
    """(flush) :raise InvalidInput:"""
    check_password_policy(new or "")
    person.password_hash = policy(session).hasher.hash(new)
    person.failed_logins = 0
    person.locked_until = None
    session.flush()
