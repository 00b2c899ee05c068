"""TOTP second factor (RFC 6238): enrolment, verification with replay refused, removal.

Plain Python, takes a session. A code is accepted once: the step it belongs to is claimed
by a conditional UPDATE, so two concurrent uses of one code cannot both pass.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

import pyotp
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from common.db import utcnow
from identity.accounts import (
    TOTP,
    InvalidCredentials,
    InvalidTotp,
    check_lock,
    check_lock_under_write,
    masked_id_number,
    masked_mobile,
    policy,
    record_failure,
    verify_password,
)
from identity.models import Person


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(session: Session, person: Person, secret: str) -> str:
    label = masked_mobile(session, person) or masked_id_number(session, person)
    return pyotp.TOTP(secret).provisioning_uri(name=label, issuer_name=policy(session).totp_issuer)


def _totp_step(secret: str, code: str) -> int | None:
    """The matching time step (±1 step of clock skew), or None."""
    code = (code or "").strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = utcnow()
    for skew in (0, -1, 1):
        when = now + timedelta(seconds=30 * skew)
        if hmac.compare_digest(totp.at(when), code):
            return totp.timecode(when)
    return None


def enable_totp(session: Session, person: Person, secret: str, code: str) -> None:
    """Confirm enrolment with a first code. :raise InvalidTotp:"""
    step = _totp_step(secret, code)
    if step is None:
        raise InvalidTotp()
    person.totp_secret_enc = policy(session).pii.encrypt(TOTP, secret)
    person.totp_last_step = step
    session.commit()


def disable_totp(session: Session, person: Person, password: str) -> None:
    """:raise InvalidCredentials: wrong password."""
    if not verify_password(session, person, password or ""):
        record_failure(session, person)
        raise InvalidCredentials()
    person.totp_secret_enc = None
    person.totp_last_step = None
    session.commit()


def verify_totp(session: Session, person: Person, code: str) -> None:
    """Second factor: a code is accepted once (replay refused); failures count toward the lock.

    :raise AccountLocked: :raise InvalidTotp:
    """
    check_lock(person)
    if person.totp_secret_enc is None:
        raise InvalidTotp()
    step = _totp_step(policy(session).pii.decrypt(TOTP, person.totp_secret_enc), code)
    if step is None or not _claim_totp_step(session, person, step):
        record_failure(session, person)
        check_lock(person)
        raise InvalidTotp()
    check_lock_under_write(session, person)  # as authenticate does for the password
    person.failed_logins = 0
    session.commit()


def _claim_totp_step(session: Session, person: Person, step: int) -> bool:
    """Move ``totp_last_step`` forward to ``step`` in one conditional UPDATE: of two concurrent
    uses of one code (each having read the old step) the database lets exactly one through,
    because the second UPDATE's condition no longer holds once the first has written
    (PostgreSQL re-checks it after waiting on the row lock)."""
    claimed = session.execute(
        update(Person)
        .where(Person.id == person.id,
               or_(Person.totp_last_step.is_(None), Person.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        session.refresh(person)
        return False
    person.totp_last_step = step
    return True
