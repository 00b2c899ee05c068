"""TOTP second factor (identity.totp): enrolment, replay, concurrent use, lockout."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from freezegun import freeze_time

from common.db import utcnow
from identity import accounts, totp
from identity.models import Person
from tests.identity.locks import another_writer_is_not_blocked
from tests.identity.test_accounts import make


def test_totp_enrolment_verification_and_replay(db):
    person = make(db)
    secret = totp.new_totp_secret()
    with pytest.raises(accounts.InvalidTotp):
        totp.enable_totp(db, person, secret, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    with freeze_time(utcnow()) as clock:
        totp.enable_totp(db, person, secret, pyotp.TOTP(secret).now())
        assert person.totp_enabled and secret not in person.totp_secret_enc
        # The enrolment code cannot be replayed as a login code.
        with pytest.raises(accounts.InvalidTotp):
            totp.verify_totp(db, person, pyotp.TOTP(secret).now())
        clock.tick(timedelta(seconds=30))
        code = pyotp.TOTP(secret).now()
        totp.verify_totp(db, person, code)
        with pytest.raises(accounts.InvalidTotp):
            totp.verify_totp(db, person, code)
    with pytest.raises(accounts.InvalidCredentials):
        totp.disable_totp(db, person, "wrong-pass-1")
    totp.disable_totp(db, person, "secret-pass-1")
    assert not person.totp_enabled


def test_one_totp_code_used_twice_at_once_passes_once(app, db):
    """Two logins racing with one code: both read the old last step before either writes.
    The claim is a conditional UPDATE, so the second finds the step taken and is refused."""
    from common.db import get_db

    person = make(db)
    secret = totp.new_totp_secret()
    with freeze_time(utcnow()) as clock:
        totp.enable_totp(db, person, secret, pyotp.TOTP(secret).now())
        clock.tick(timedelta(seconds=30))
        code = pyotp.TOTP(secret).now()
        with get_db(app).session() as first, get_db(app).session() as second:
            one, two = first.get(Person, person.id), second.get(Person, person.id)
            assert one.totp_last_step == two.totp_last_step  # both saw the same, old, step
            totp.verify_totp(first, one, code)
            with pytest.raises(accounts.InvalidTotp):
                totp.verify_totp(second, two, code)
            assert two.failed_logins == 1


def test_wrong_totp_codes_lock_the_account(db):
    person = make(db)
    secret = totp.new_totp_secret()
    with freeze_time(utcnow()) as clock:
        totp.enable_totp(db, person, secret, pyotp.TOTP(secret).now())
        for _ in range(accounts.policy(db).max_failures - 1):
            with pytest.raises(accounts.InvalidTotp):
                totp.verify_totp(db, person, "abcdef")
        with pytest.raises(accounts.AccountLocked):
            totp.verify_totp(db, person, "12345")
        clock.tick(timedelta(seconds=30))
        with pytest.raises(accounts.AccountLocked):  # the right code does not help while locked
            totp.verify_totp(db, person, pyotp.TOTP(secret).now())


def test_a_right_code_in_flight_when_others_lock_the_account_is_refused_and_keeps_the_lock(app, db, monkeypatch):
    """Wrong codes sent beside a right one lock the account while its code is checked: the
    right one is refused, and the lock and the count the wrong ones left stay as they are."""
    from common.db import get_db

    person = make(db)
    secret = totp.new_totp_secret()
    with freeze_time(utcnow()) as clock:
        totp.enable_totp(db, person, secret, pyotp.TOTP(secret).now())
        clock.tick(timedelta(seconds=30))
        check = totp._totp_step

        def checked_while_others_lock(secret, code):
            step = check(secret, code)
            with app.app_context(), get_db(app).session() as other:  # the other guesses' requests
                row = other.get(Person, person.id)
                row.locked_until, row.failed_logins = utcnow() + accounts.policy(other).lock_window, 2
                other.commit()
            return step

        monkeypatch.setattr(totp, "_totp_step", checked_while_others_lock)
        with pytest.raises(accounts.AccountLocked):
            totp.verify_totp(db, person, pyotp.TOTP(secret).now())
    another_writer_is_not_blocked(app, person.id)  # the refusal let its write lock go
    db.rollback()
    db.expire_all()
    row = db.get(Person, person.id)
    assert row.locked_until is not None and row.failed_logins == 2
