"""Password reset links (:mod:`identity.recovery`), called directly with a session."""

from __future__ import annotations

from datetime import timedelta

from common.db import get_db, utcnow
from identity import accounts, recovery
from identity.models import PasswordReset, Person
from identity.seed import DEMO_PEOPLE
from tests.support.races import paused_after_check


def test_one_reset_link_used_twice_at_once_sets_one_password(seeded, db, monkeypatch):
    """The second use is held after its check while the first completes: it is refused, and the
    password is the first one's (both used to pass the check and the last one won)."""
    person = accounts.find_person_by_id_number(db, DEMO_PEOPLE[0]["id_number"])
    token = "a-reset-token-for-the-race"
    db.add(PasswordReset(person_id=person.id, token_hash=recovery._token_hash(token),
                         expires_at=utcnow() + timedelta(minutes=10)))
    db.commit()

    def reset(password):
        def run():
            with seeded.app_context(), get_db(seeded).session() as own:
                return recovery.reset_password(own, token, password).id
        return run

    held, first = paused_after_check(monkeypatch, accounts, "set_password", reset("Held-Pass-2026!x"),
                                     reset("First-Pass-2026!x"), get_db(seeded).engine)
    assert first == person.id and isinstance(held, recovery.InvalidResetToken)
    db.expire_all()
    person = db.get(Person, person.id)
    assert accounts.verify_password(db, person, "First-Pass-2026!x")
    assert not accounts.verify_password(db, person, "Held-Pass-2026!x")

