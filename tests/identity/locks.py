"""What the identity tests check about row locks."""

from __future__ import annotations

from identity.models import Person


def another_writer_is_not_blocked(app, person_id) -> None:
    """Another session writes the person's row at once (a lock left held fails it in 0.2 s)."""
    from sqlalchemy import text

    from common.db import begin_write, get_db

    with app.app_context(), get_db(app).session() as other:
        sqlite = other.get_bind().dialect.name == "sqlite"
        other.execute(text("PRAGMA busy_timeout=200" if sqlite else "SET LOCAL lock_timeout = '200ms'"))
        try:
            begin_write(other)
            other.get(Person, person_id, with_for_update=True).failed_logins = 2
            other.commit()
        finally:
            other.rollback()
            if sqlite:  # the pooled connection keeps its pragma
                other.execute(text("PRAGMA busy_timeout=10000"))
