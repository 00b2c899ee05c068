"""First-use creations under concurrency: one log key and one maker, however many workers race."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from common.crypto.keystore import load_kek
from common.db import get_db
from seal import certificates
from seal.log import keys
from seal.models import Certificate, SigningKey
from tests.support.concurrency import in_threads, raised


def _race(app, work) -> list:
    """Run ``work(session)`` in two threads with their own sessions, started together; each holds
    its transaction open a moment before committing, so the second arrives while the first has
    created but not yet committed."""
    barrier = threading.Barrier(2, timeout=20)

    def run(_index: int):
        with get_db(app).session() as session:
            barrier.wait()
            result = work(session)
            time.sleep(0.3)
            session.commit()
            return result

    results = in_threads(run, 2)
    assert not raised(results), results
    return results


def test_two_first_publishers_create_one_log_key(app):
    kek = load_kek(app.config)
    kids = _race(app, lambda session: keys.load_signer(session, kek, "xsn.test/seal-log").key_id)
    assert len(kids) == 2 and kids[0] == kids[1]
    with get_db(app).session() as session:
        rows = session.scalars(select(SigningKey).where(SigningKey.purpose == keys.LOG_KEY_PURPOSE)).all()
        assert [(row.kid, row.status) for row in rows] == [(kids[0], "active")]


def test_two_first_seal_registrations_create_one_maker(app):
    kek = load_kek(app.config)
    serials = _race(app, lambda session: certificates.maker_certificate(session, kek).serial)
    assert len(serials) == 2 and serials[0] == serials[1]
    with get_db(app).session() as session:
        makers = session.scalars(select(Certificate.serial).where(Certificate.role == "maker")).all()
        assert makers == [serials[0]]


def test_the_oldest_of_several_active_log_keys_is_used(app):
    """A store from before the rule may hold two active log keys: every worker picks the same one."""
    kek = load_kek(app.config)
    with get_db(app).session() as session:
        store = keys.key_store(session, kek)
        first = store.generate(keys.LOG_KEY_PURPOSE)
        session.commit()
        time.sleep(0.01)
        store.generate(keys.LOG_KEY_PURPOSE)
        session.commit()
        assert keys.load_signer(session, kek, "xsn.test/seal-log").key_id == first.kid
