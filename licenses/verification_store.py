"""Where online verification reads an authorisation and writes its uses: two implementations.

:class:`PostgresStore` (production) works on a psycopg connection of its own pool
(:class:`Stores`: autocommit, no pre-ping): one statement reads the authorisation with its
licence and type; after the checks, one statement takes a use (only while the authorisation and
the licence still allow it, judged on the rows as they are when it runs) and writes the accepted
use record, and commits as it ends. Two round trips and no BEGIN/COMMIT; SQLAlchemy's execution
layer and session were about half of a verification's CPU time, so this path speaks to the
driver directly (the statements are fixed text with positional parameters, which psycopg
prepares on each connection after a few uses).

:class:`SessionStore` (SQLite, development and most tests) does the same through Core
statements on the request's session: lookup, conditional UPDATE, INSERT, commit.

Both: a refusal is one committed use record; a use is taken by a conditional UPDATE, so two
windows racing for the last use cannot both get it (tests/licenses/test_verification_concurrency.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from common.db import make_engine

from .models import VALID, Authorisation, Licence, LicenceType, UseRecord

AUTH_COLUMNS = ("id", "licence_id", "fields", "purpose", "audience", "expires_at", "max_uses", "uses", "status")
LICENCE_COLUMNS = ("id", "identifier", "type_code", "version", "face_number", "issuer_code", "issuer_name",
                   "holder_kind", "holder_name", "holder_code_masked", "valid_from", "valid_until", "status",
                   "document_enc", "document_sm3", "signature_b64", "issued_at")
Found = tuple[SimpleNamespace, SimpleNamespace, SimpleNamespace]  # authorisation, licence, licence type


def _found(row) -> Found:
    auth = SimpleNamespace(**dict(zip(AUTH_COLUMNS, row[:9], strict=True)))
    licence = SimpleNamespace(**dict(zip(LICENCE_COLUMNS, row[9:26], strict=True)))
    fields = _type_fields(row[27]) if isinstance(row[27], str) else row[27]
    return auth, licence, SimpleNamespace(name=row[26], fields=fields)


@lru_cache(maxsize=256)
def _type_fields(text: str) -> list[dict[str, Any]]:
    """A type's field specs from their stored JSON text (PostgreSQL sends the text; a type's
    specs are the same few hundred bytes on every verification). Callers only read the list."""
    return json.loads(text)


# -- PostgreSQL ----------------------------------------------------------------------------------
# Fixed text with positional parameters (psycopg reorders named ones on every call). The
# lookup's columns are in the order of AUTH_COLUMNS, LICENCE_COLUMNS, then the type's two.
_PG_LOOKUP = """
SELECT a.id, a.licence_id, a.fields, a.purpose, a.audience, a.expires_at, a.max_uses, a.uses, a.status,
       l.id, l.identifier, l.type_code, l.version, l.face_number, l.issuer_code, l.issuer_name, l.holder_kind,
       l.holder_name, l.holder_code_masked, l.valid_from, l.valid_until, l.status, l.document_enc, l.document_sm3,
       l.signature_b64, l.issued_at, t.name, t.fields::text
FROM authorisations a JOIN licences l ON l.id = a.licence_id JOIN licence_types t ON t.code = l.type_code
WHERE a.code = %s"""
# $1 authorisation, $2 licence, $3 now, $4 the valid status, $5-$9 the record's verifier, client,
# organisation, purpose and request id.
_PG_TAKE = """
WITH taken AS (
    UPDATE authorisations SET uses = uses + 1
    WHERE id = %s AND status = 'active' AND uses < max_uses AND expires_at > %s
      AND EXISTS (SELECT 1 FROM licences WHERE id = %s AND status = %s)
    RETURNING id, licence_id, uses),
recorded AS (
    INSERT INTO use_records (licence_id, authorisation_id, verifier, verifier_client, verifier_org, purpose,
                             outcome, reason, request_id, at)
    SELECT licence_id, id, %s, %s, %s, %s, 'accepted', NULL, %s, %s FROM taken)
SELECT uses FROM taken"""
_PG_RECORD = """
INSERT INTO use_records (licence_id, authorisation_id, verifier, verifier_client, verifier_org, purpose, outcome,
                         reason, request_id, at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""


class PostgresStore:
    """One request's use of a connection of :class:`Stores`' pool (autocommit: each statement
    commits, durably with ``synchronous_commit``, as it ends)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._fairy = engine.raw_connection()
        self._conn = self._fairy.driver_connection

    def lookup(self, code: str) -> Found | None:
        try:
            row = self._conn.execute(_PG_LOOKUP, (code,)).fetchone()
        except psycopg.OperationalError:
            # The pool does not ping: a connection the server closed meanwhile (restart, idle
            # timeout) fails here. This statement only reads, so it is sent once more on a new one.
            self._fairy.invalidate()
            self._fairy.close()
            self._fairy = self._engine.raw_connection()
            self._conn = self._fairy.driver_connection
            row = self._conn.execute(_PG_LOOKUP, (code,)).fetchone()
        if row is None:
            return None
        auth, licence, licence_type = _found(row)
        auth.expires_at = auth.expires_at.astimezone(UTC)
        if licence.issued_at is not None:
            licence.issued_at = licence.issued_at.astimezone(UTC)
        return auth, licence, licence_type

    def take(self, auth: SimpleNamespace, record: dict[str, Any], now: datetime) -> int | None:
        """Take one use and record it, committed; ``None`` (nothing written) when no use is left
        or the authorisation or the licence changed since the lookup."""
        row = self._conn.execute(_PG_TAKE, (auth.id, now, auth.licence_id, VALID, record["verifier"],
                                            record["verifier_client"], record["verifier_org"], auth.purpose,
                                            record["request_id"], now)).fetchone()
        return None if row is None else row[0]

    def refuse(self, record: dict[str, Any], now: datetime) -> None:
        self._conn.execute(_PG_RECORD, (record["licence_id"], record["auth_id"], record["verifier"],
                                        record["verifier_client"], record["verifier_org"], record["purpose"],
                                        "refused", record["reason"], record["request_id"], now))

    def close(self) -> None:
        """Give the connection back; one that broke or was left inside a statement is dropped."""
        if self._conn.broken or self._conn.info.transaction_status != TransactionStatus.IDLE:
            self._fairy.invalidate()
        self._fairy.close()


# -- any other database, through the session -----------------------------------------------------
_auths, _licences, _types = Authorisation.__table__, Licence.__table__, LicenceType.__table__
_LOOKUP = (select(*(_auths.c[c] for c in AUTH_COLUMNS), *(_licences.c[c] for c in LICENCE_COLUMNS),
                  _types.c.name, _types.c.fields)
           .join_from(_auths, _licences, _licences.c.id == _auths.c.licence_id)
           .join(_types, _types.c.code == _licences.c.type_code).where(_auths.c.code == bindparam("auth_code")))
_TAKE_USE = (update(_auths).where(_auths.c.id == bindparam("auth_id"), _auths.c.status == "active",
                                  _auths.c.uses < _auths.c.max_uses,
                                  _auths.c.expires_at > bindparam("now", type_=_auths.c.expires_at.type),
                                  select(_licences.c.id).where(_licences.c.id == bindparam("of_licence"),
                                                               _licences.c.status == VALID).exists())
             .values(uses=_auths.c.uses + 1).returning(_auths.c.uses))
_RECORD = insert(UseRecord.__table__)


class SessionStore:
    """The same on the request's session (SQLite: a conditional UPDATE … RETURNING, SQLite ≥ 3.35)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lookup(self, code: str) -> Found | None:
        row = self.session.execute(_LOOKUP, {"auth_code": code}).first()
        return None if row is None else _found(row)

    def take(self, auth: SimpleNamespace, record: dict[str, Any], now: datetime) -> int | None:
        uses = self.session.execute(_TAKE_USE, {"auth_id": auth.id, "of_licence": auth.licence_id,
                                                "now": now}).scalar()
        if uses is None:
            self.session.rollback()
            return None
        self._insert({**record, "licence_id": auth.licence_id, "auth_id": auth.id, "purpose": auth.purpose,
                      "outcome": "accepted"}, now)
        self.session.commit()
        return uses

    def refuse(self, record: dict[str, Any], now: datetime) -> None:
        self._insert({**record, "outcome": "refused"}, now)
        self.session.commit()

    def _insert(self, record: dict[str, Any], now: datetime) -> None:
        self.session.execute(_RECORD, {
            "licence_id": record["licence_id"], "authorisation_id": record["auth_id"],
            "verifier": record["verifier"], "verifier_client": record["verifier_client"],
            "verifier_org": record["verifier_org"], "purpose": record["purpose"], "outcome": record["outcome"],
            "reason": record.get("reason"), "request_id": record["request_id"], "at": now})

    def close(self) -> None:
        pass


class Stores:
    """Where each verification of one app gets its store.

    On PostgreSQL a pool of its own, built on first use (after a server's workers fork): in
    autocommit mode, so no connection is switched in and out of it per request, and without the
    pre-ping every other checkout pays (a ``SELECT 1`` round trip per request). A connection the
    server closed meanwhile fails the lookup, which is tried again on a new one
    (:meth:`PostgresStore.lookup`); a broken one is dropped when the store is closed.
    """

    def __init__(self, engine: Engine, *, pool_size: int = 8) -> None:
        self._engine, self._pool_size = engine, pool_size
        self._direct: Engine | None = None
        self._lock = threading.Lock()

    def open(self, session: Callable[[], Session]) -> PostgresStore | SessionStore:
        """The store for one verification; ``session`` gives the request's session (not opened
        on PostgreSQL). Close it after use."""
        if self._engine.dialect.name != "postgresql":
            return SessionStore(session())
        if self._direct is None:
            with self._lock:
                if self._direct is None:
                    self._direct = make_engine(self._engine.url.render_as_string(hide_password=False),
                                               isolation_level="AUTOCOMMIT", pool_pre_ping=False,
                                               pool_reset_on_return=None, pool_size=self._pool_size)
        return PostgresStore(self._direct)

    def dispose(self) -> None:
        """Close the pool's connections (tests, shutdown)."""
        if self._direct is not None:
            self._direct.dispose()
