"""Where online verification reads an authorisation and writes its uses: two implementations.

:class:`PostgresStore` (production) works on a psycopg connection of its own pool
(:class:`Stores`: autocommit, no pre-ping): one statement reads the authorisation with its
licence and type; after the checks, one statement takes a use (only while the authorisation and
the licence still allow it, judged on the rows as they are when it runs) and writes the accepted
use record, and commits as it ends. Two round trips and no BEGIN/COMMIT; SQLAlchemy's execution
layer and session were about half of a verification's CPU time, so this path speaks to the
driver directly (the statements are fixed text with positional parameters, which psycopg
prepares on each connection after a few uses). A code that passed every check in the last
minute (:attr:`Stores.verified`, per app) is verified in one round trip: the statement that takes
the use also makes the database's checks and returns the count of uses (the rows are the
lookup's, kept with the code: :class:`Verified`), and takes nothing when anything changed
(:meth:`PostgresStore.take_known`); the takes of the process's concurrent verifications of such
codes go in one statement and one commit (:attr:`Stores.takes`, :mod:`licenses.take_groups`).

:class:`SessionStore` (SQLite, development and most tests) does the same through Core
statements on the request's session: lookup, conditional UPDATE, INSERT, commit.

Both: a refusal is one committed use record; a use is taken by a conditional UPDATE, so two
windows racing for the last use cannot both get it (tests/licenses/test_verification_concurrency.py).
"""

from __future__ import annotations

import json
import select as select_module
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import orjson
import psycopg
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from common.db_driver import PSYCOPG, DriverPool, Pooled, engine_driver_pool
from common.ttl_cache import TtlCache

from .models import VALID, Authorisation, Licence, LicenceType, UseRecord
from .take_groups import TakeGroups

AUTH_COLUMNS = ("id", "licence_id", "fields", "purpose", "audience", "expires_at", "max_uses", "uses", "status")
LICENCE_COLUMNS = ("id", "identifier", "type_code", "version", "face_number", "issuer_code", "issuer_name",
                   "holder_kind", "holder_name", "holder_code_masked", "valid_from", "valid_until", "status",
                   "document_enc", "document_sm3", "signature_b64", "issued_at")
Found = tuple[SimpleNamespace, SimpleNamespace, SimpleNamespace]  # authorisation, licence, licence type


def _found(row) -> Found:
    auth = SimpleNamespace(**dict(zip(AUTH_COLUMNS, row[:9], strict=True)))
    licence = SimpleNamespace(**dict(zip(LICENCE_COLUMNS, row[9:26], strict=True)))
    fields = _json_list(row[27]) if isinstance(row[27], str) else row[27]
    return auth, licence, SimpleNamespace(name=row[26], fields=fields)


@lru_cache(maxsize=4096)
def _json_list(text: str) -> list[Any]:
    """A type's field specs, or an authorisation's field names, from their stored JSON text
    (PostgreSQL sends the text: the same few hundred bytes on every verification of a licence,
    parsed once). Callers only read the list."""
    return json.loads(text)


# -- PostgreSQL ----------------------------------------------------------------------------------
# Fixed text with positional parameters (psycopg reorders named ones on every call). The
# lookup's columns are in the order of AUTH_COLUMNS, LICENCE_COLUMNS, the type's two, then the
# licence row's version and the type row's.
_PG_LOOKUP = """
SELECT a.id, a.licence_id, a.fields::text, a.purpose, a.audience, a.expires_at, a.max_uses, a.uses, a.status,
       l.id, l.identifier, l.type_code, l.version, l.face_number, l.issuer_code, l.issuer_name, l.holder_kind,
       l.holder_name, l.holder_code_masked, l.valid_from, l.valid_until, l.status, l.document_enc, l.document_sm3,
       l.signature_b64, l.issued_at, t.name, t.fields::text, l.xmin::text, t.xmin::text
FROM authorisations a JOIN licences l ON l.id = a.licence_id JOIN licence_types t ON t.code = l.type_code
WHERE a.code = %s"""
# Codes whose licences were verified before (:class:`Verified`), several requests' at once
# (:mod:`licenses.take_groups`): one statement takes each use and records it only while every
# check the database can make still passes (the authorisation's state, time, count and audience;
# the licence's status, validity and digest), the licence row is the version verified and the
# type row the version read then (``xmin``: any UPDATE of a row makes a new one), the
# authorisation's other columns the answer shows are those read (its ``xmin`` changes with every
# use, so they are compared: fields, purpose, expiry, count), and returns, for each take it made,
# only the uses after it: every other column the answer shows is the lookup's, kept in
# :class:`Verified`. $1 the takes as a JSON array, each [index, code, authorisation, licence,
# its xmin, the type's xmin, the audience verified before (the caller has checked it is one of
# the window's names: the row must still name it), the signed digest, the record's verifier,
# client, organisation and request id, now, today]; $2 the valid status. The authorisations are
# locked in id order before any is written, so two groups sharing codes wait for each other,
# never deadlock. Its conditions must stay those of verification._decide / licence_checks: a
# check added there is added here too (verification answers a disagreement with the refusal and
# logs an error).
_PG_TAKE_KNOWN = """
WITH b AS MATERIALIZED (
    SELECT (e->>0)::int AS i, e->>1 AS code, e->>2 AS auth_id, e->>3 AS licence_id, (e->>4)::xid AS row_version,
           (e->>5)::xid AS type_version, e->>6 AS audience, e->>7 AS document_sm3, e->>8 AS verifier,
           e->>9 AS verifier_client, e->>10 AS verifier_org, e->>11 AS request_id, (e->>12)::timestamptz AS now,
           (e->>13)::date AS today, e->>14 AS auth_fields, e->>15 AS purpose, (e->>16)::timestamptz AS expires_at,
           (e->>17)::int AS max_uses
    FROM jsonb_array_elements(CAST(%s AS jsonb)) AS e),
locked AS MATERIALIZED (
    SELECT a.id, b.i FROM b JOIN authorisations a ON a.id = b.auth_id AND a.code = b.code
    ORDER BY a.id FOR NO KEY UPDATE OF a),
taken AS (
    UPDATE authorisations a SET uses = a.uses + 1
    FROM locked k, b, licences l, licence_types t
    WHERE a.id = k.id AND b.i = k.i AND l.id = a.licence_id AND l.id = b.licence_id AND l.xmin = b.row_version
      AND t.code = l.type_code AND t.xmin = b.type_version
      AND a.status = 'active' AND a.uses < a.max_uses AND a.expires_at > b.now AND a.audience = b.audience
      AND a.fields::text = b.auth_fields AND a.purpose = b.purpose AND a.expires_at = b.expires_at
      AND a.max_uses = b.max_uses
      AND l.status = %s AND l.document_sm3 = b.document_sm3 AND l.valid_from <= b.today
      AND (l.valid_until IS NULL OR l.valid_until >= b.today)
    RETURNING b.i, a.uses, a.id, a.licence_id, a.purpose, b.verifier, b.verifier_client, b.verifier_org,
              b.request_id, b.now),
recorded AS (
    INSERT INTO use_records (licence_id, authorisation_id, verifier, verifier_client, verifier_org, purpose,
                             outcome, reason, request_id, at)
    SELECT licence_id, id, verifier, verifier_client, verifier_org, purpose, 'accepted', NULL, request_id, now
    FROM taken)
SELECT i, uses FROM taken"""
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


@dataclass(frozen=True, eq=False)
class Verified:
    """What a verification of a code that passed every check read: the lookup's rows (the
    authorisation as read, its ``uses`` then; the licence without its stored document, with its
    row version ``xmin``; the type with its own), the document read (its SM3 and face) and the
    signature's own SM3 (the seal client's verdict key, computed once here rather than on every
    verification). Kept by :attr:`Stores.verified`; the licence's version, digest and signature
    and the authorisation's audience are read off the rows.

    The rows stand for those in the answers of later verifications of the code
    (:meth:`PostgresStore.take_known`), which take a use only while the licence and the type rows
    are the versions read with it and the authorisation's fields, purpose, expiry and count are
    those read (its row changes with every use, so it has no version to compare), so their
    columns are these. The cache is per process: nothing elsewhere can clear it, so a column the
    answer shows that can change must be checked by that statement. Everything in it is only read."""

    auth: SimpleNamespace
    licence: SimpleNamespace
    licence_type: SimpleNamespace
    signature_sm3: str
    document: Any
    # The answer's members that are the same for every accepted verification of the code (the
    # purpose, the licence's summary, the authorised fields and their labels: functions of the
    # rows above, which the statement keeps as they were), built once (verification._shown).
    shown: dict[str, Any] | None = None

    @property
    def found(self) -> Found:
        return self.auth, self.licence, self.licence_type

    @property
    def audience(self) -> str:
        return self.auth.audience

    @property
    def document_sm3(self) -> str:
        return self.licence.document_sm3

    @property
    def signature_b64(self) -> str:
        return self.licence.signature_b64


def _take_key(take) -> str:
    return take[0]  # the code: one take of an authorisation per statement


class PostgresStore:
    """One request's use of a connection of :class:`Stores`' pool (autocommit: each statement
    commits, durably with ``synchronous_commit``, as it ends), taken with its first statement."""

    def __init__(self, pool: DriverPool, verified: TtlCache[str, Verified] | None = None,
                 groups: TakeGroups | None = None) -> None:
        self._pool = pool
        self.verified = verified
        self._groups = groups
        self._pooled: Pooled | None = None

    def _connection(self) -> Pooled:
        """The pool's connection this store sends on, taken with its first statement: a known
        code's take carried by another verification's group statement sends none, so most
        verifications under load never check one out (the pool's lock, its condition and the
        connection's status read on return: ~17 k instructions a follower at 16 threads,
        callgrind; docs/ARCHITECTURE.md, licences, "What only a verification pays").

        :raise common.db_driver.PoolTimeout: no connection came free in time (503)."""
        if self._pooled is None:
            self._pooled = self._pool.get()
        return self._pooled

    def _reconnect(self) -> None:
        # Let go of the old connection first: if no new one can be had, close() has none to give back.
        pooled, self._pooled = self._pooled, None
        self._pooled = self._pool.replace(pooled)

    def _execute(self, statement: str, params: tuple):
        cursor = self._connection().cursor
        cursor.execute(statement, params)
        return cursor.fetchone()

    def lookup(self, code: str) -> Found | None:
        try:
            row = self._execute(_PG_LOOKUP, (code,))
        except psycopg.OperationalError:
            # The pool does not ping: a connection the server closed meanwhile (restart, idle
            # timeout) fails here. This statement only reads, so it is sent once more on a new one.
            self._reconnect()
            row = self._execute(_PG_LOOKUP, (code,))
        if row is None:
            return None
        auth, licence, licence_type = _found(row)
        # The text as stored, for the known-code statement to compare with the row (json has no =).
        auth.fields_text, auth.fields = auth.fields, _json_list(auth.fields)
        licence.row_version, licence_type.row_version = row[28], row[29]
        auth.expires_at = auth.expires_at.astimezone(UTC)
        if licence.issued_at is not None:
            licence.issued_at = licence.issued_at.astimezone(UTC)
        return auth, licence, licence_type

    def take_known(self, code: str, known: Verified, record: dict[str, Any], now: datetime,
                   today: date) -> tuple[Found, int] | None:
        """Take a use of a code verified before, and record it, in one committed statement, if
        every check the database can make passes and the licence and type rows are still the
        versions verified; ``(what the lookup would have read, uses after this one)``: the rows of
        ``known.found`` (the licence and type shared, only read), or ``None`` with nothing written.
        The caller has checked the document and the seal's verdict of ``known``.

        A write is never sent twice (see :meth:`write_known`); one that breaks during it fails
        the request, and every request of its group."""
        take = (code, known, record, now, today)
        row = self.write_known([take])[0] if self._groups is None else self._groups.run(self, take)
        if row is None:
            return None
        auth, licence, licence_type = known.found
        uses = row[1]
        auth = SimpleNamespace(**vars(auth))  # the cached one is shared: only this request's count differs
        auth.uses = uses - 1  # as the lookup would have read it before this use
        return (auth, licence, licence_type), uses

    def write_known(self, takes) -> list[tuple | None]:
        """Known codes' takes (``(code, known, record, now, today)``, distinct codes: one group of
        :class:`~licenses.take_groups.TakeGroups`) in one committed statement on this store's
        connection: each take's ``(index, uses after it)``, or None (nothing written for it).

        The connection is looked at just before the statement goes (the leader's, which may have
        waited in the queue since its request began): one the server closed meanwhile (the pool
        does not ping) has something to read, the server's goodbye or its end, and is replaced
        first, so the statement is sent once, on a live connection."""
        waiting = select_module.poll()
        waiting.register(self._connection().conn.fileno(), select_module.POLLIN)
        if waiting.poll(0):
            self._reconnect()
        batch = orjson.dumps([
            (i, code, (auth := known.auth).id, (licence := known.licence).id, licence.row_version,
             known.licence_type.row_version, auth.audience, licence.document_sm3, record["verifier"],
             record["verifier_client"], record["verifier_org"], record["request_id"], now, today,
             auth.fields_text, auth.purpose, auth.expires_at, auth.max_uses)
            for i, (code, known, record, now, today) in enumerate(takes)])
        cursor = self._pooled.cursor
        cursor.execute(_PG_TAKE_KNOWN, (batch.decode(), VALID))
        rows: list[tuple | None] = [None] * len(takes)
        for row in cursor.fetchall():
            rows[row[0]] = row
        return rows

    def take(self, auth: SimpleNamespace, record: dict[str, Any], now: datetime) -> int | None:
        """Take one use and record it, committed; ``None`` (nothing written) when no use is left
        or the authorisation or the licence changed since the lookup."""
        row = self._execute(_PG_TAKE, (auth.id, now, auth.licence_id, VALID, record["verifier"],
                                       record["verifier_client"], record["verifier_org"], auth.purpose,
                                       record["request_id"], now))
        return None if row is None else row[0]

    def refuse(self, record: dict[str, Any], now: datetime) -> None:
        self._connection().cursor.execute(_PG_RECORD, (record["licence_id"], record["auth_id"], record["verifier"],
                                                 record["verifier_client"], record["verifier_org"],
                                                 record["purpose"], "refused", record["reason"],
                                                 record["request_id"], now))

    def close(self) -> None:
        """Give the connection back; one that broke or was left inside a statement is dropped."""
        if self._pooled is not None:
            self._pool.put(self._pooled)
            self._pooled = None


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
    """The same on the request's session (SQLite: a conditional UPDATE … RETURNING, SQLite ≥ 3.35).
    It keeps no verified codes: every verification is a lookup and a take."""

    verified = None

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

    On PostgreSQL through psycopg the engine's :class:`common.db_driver.DriverPool` (``engine_driver_pool``, built
    on first use, after a server's workers fork): autocommit psycopg connections without SQLAlchemy's pool and
    without the pre-ping every other checkout pays (a ``SELECT 1`` round trip per request). A
    connection the server closed meanwhile fails the lookup, which is tried again on a new one
    (:meth:`PostgresStore.lookup`), or is seen before a known code's write
    (:meth:`PostgresStore.take_known`); a broken one is dropped when the store is closed.

    Connection budget: a verification holds at most one connection of this pool, from its first
    statement to its end (one whose take another's group statement carries holds none), and a
    worker runs at most its thread count of requests at once, so a pool as large as the
    worker's threads is never short; its connections are opened as verifications need them, so
    ``pool_size`` (``LICENSES_VERIFY_POOL_SIZE``, by default ``processes.GUNICORN_THREADS``, 16)
    is only a ceiling: at most that many per worker, beside the app engine's 5 + 10 overflow
    (:func:`common.db.make_engine`). With more threads than ``pool_size`` a verification waits
    for a connection (up to 30 s) instead of opening another.
    """

    def __init__(self, engine: Engine, *, pool_size: int = 16, group_takes: bool = True) -> None:
        self._engine, self._pool_size = engine, pool_size
        # Known codes' takes of this process's concurrent verifications, written together.
        self.takes: TakeGroups | None = TakeGroups(PostgresStore.write_known, key=_take_key) if group_takes else None
        # Codes verified lately: a minute, as long as the seal's verdicts are cached. A version of
        # a row (xmin) names it for a few billion transactions, far beyond a minute.
        self.verified: TtlCache[str, Verified] = TtlCache(seconds=60.0, size=4096)

    def open(self, session: Callable[[], Session]) -> PostgresStore | SessionStore:
        """The store for one verification; ``session`` gives the request's session (not opened
        on PostgreSQL). Close it after use."""
        if self._engine.dialect.driver != PSYCOPG:  # the store speaks psycopg itself
            return SessionStore(session())
        return PostgresStore(self.pool(), self.verified, self.takes)

    def pool(self) -> DriverPool:
        """The engine's driver pool in this process (:func:`common.db_driver.engine_driver_pool`:
        built on first use, after a server's workers fork, and retired with the engine)."""
        return engine_driver_pool(self._engine, size=self._pool_size)

    def dispose(self) -> None:
        """Close the pool's idle connections (tests, shutdown)."""
        if self._engine.dialect.driver == PSYCOPG:
            self.pool().dispose()
