"""A bulk job's chunks (:mod:`licenses.bulk.jobs`): each licence is written once, sealed and valid.

A runner issues a job's pending rows a chunk at a time, in line order:

1. **Reserve** (:func:`reserve`, committed by the caller with its lease renewed): each row's
   values checked at the upload are taken (a row without trusted values is checked again in
   full and its fresh values kept with it; a row that no longer passes becomes invalid, with its
   line and reason); the chunk's serial numbers and status-list indexes are taken from the
   counters; the chunk's *frame* (its lines, its first numbers, the day of issue and the type as
   it is now; a few hundred bytes) is added to the job's ``chunks``. No licence is written: the
   chunk's licences are built in memory.
2. **Sign**: one call to the seal node's batch API, ``Idempotency-Key: bulk:<job>:lines-<first
   line>``.
3. **Issue** (:func:`issue`, committed by the caller with its lease renewed): the licences
   inserted sealed and valid, their lifecycle events, the known holders told through the outbox,
   the rows marked issued, the frame removed: a few statements for the whole chunk.

Everything a licence's document holds follows from its chunk's frame and its row's checked
values, so a chunk interrupted between (1) and (3) is rebuilt (:func:`rebuild`) into exactly the
same documents and sent again under the same key: the seal node replays its signatures rather
than signing again (the rebuilt licences get new ids and encryptions, which no document holds).
Until (3) commits nothing of the chunk is visible; once it has, the chunk is done. The licences'
idempotency key ``bulk:<job>:<line>`` is unique besides, so no licence can be written twice.

Before chunks, a runner inserted each licence pending, then updated it valid once sealed (a
second version of a row with nine indexes); rows left that way by a runner of that version are
finished as they were (:func:`legacy_batches`, :func:`issue_legacy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table, bindparam, case, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from common.db import utcnow
from common.db_driver import driver_errors, driver_for_rows
from common.errors import Problem
from common.values.codes import LicenseIdentifiers

from .. import issuing
from ..issuers import Issuer, check_issuer
from ..issuing import Deps
from ..models import PENDING, BulkJob, BulkRow, Licence, LicenceEvent, LicenceType
from . import checked_rows

# What the runner reads of a row (its payload holds the values it passed its check with).
ROW_COLUMNS = (BulkRow.job_id, BulkRow.line, BulkRow.payload, BulkRow.status)


class ChunkLost(RuntimeError):
    """A reserved chunk's rows cannot give back the documents it was signed with (their checked
    values were altered or removed since): nothing of it is issued."""


@dataclass
class Chunk:
    """A reserved chunk: its frame (as stored in its job) and its licences' columns, not yet sealed."""

    job_id: str
    frame: dict[str, Any]
    licences: list[dict[str, Any]]

    @property
    def key(self) -> str:
        return f"bulk:{self.job_id}:lines-{self.frame['lines'][0]}"

    @property
    def items(self) -> list[tuple[str, str]]:
        """What the seal node signs: each document's SM3 digest, with the licence's identifier."""
        return [(lic["document_sm3"], lic["identifier"]) for lic in self.licences]


def unreserved_rows(session: Session, job: BulkJob, after: int, size: int) -> list[Row]:
    """The next ``size`` pending rows after line ``after`` (the last line reserved): chunks are
    reserved in line order, so a pending row before it belongs to a chunk not yet issued. Plain
    rows, read only: building and tracking a BulkRow object per row showed in the runner's profile."""
    return list(session.execute(select(*ROW_COLUMNS).where(BulkRow.job_id == job.id, BulkRow.line > after,
                                                           BulkRow.status == "pending")
                                .order_by(BulkRow.line).limit(size)))


def reserve(session: Session, deps: Deps, issuer: Issuer, job: BulkJob, licence_type: LicenceType,
            rows: list[Row]) -> Chunk | None:
    """Step (1) for ``rows`` (:func:`unreserved_rows`); the caller renews the lease and commits.
    None when every row turned out invalid (each marked so, with its reason)."""
    try:  # the type and issuer, once for the chunk (every row of a job has the job's)
        check_issuer(issuer, licence_type)
    except Problem as exc:
        _refuse(session, job, [(row, exc) for row in rows])
        return None
    definition = checked_rows.definition_of(licence_type)
    day = issuing.today()
    frame_type = {"name": licence_type.name, "face_prefix": licence_type.face_prefix,
                  "validity_days": licence_type.validity_days, "holder_kind": licence_type.holder_kind}
    as_issued = _type_of(job, frame_type)
    kept: list[tuple[int, issuing.Checked]] = []
    refused: list[tuple[Row, Problem]] = []
    refreshed: list[dict[str, Any]] = []
    for row in rows:
        try:
            passed = checked_rows.trusted_passed(deps, row, definition)
            if passed is None:  # kept with the row, so that a rebuild finds the values signed
                passed = checked_rows.recheck(session, deps, issuer, licence_type, row, definition)
                payload = {**row.payload, "checked": checked_rows.seal_passed(deps, job.id, row.line, passed)}
                refreshed.append({"_line": row.line, "_payload": payload})
            kept.append((row.line, checked_rows.complete(as_issued, passed, day)))
        except Problem as exc:
            refused.append((row, exc))
    _refuse(session, job, refused)
    if refreshed:
        table = BulkRow.__table__
        session.execute(table.update().where(table.c.job_id == job.id, table.c.line == bindparam("_line"))
                        .values(payload=bindparam("_payload")), refreshed)
    if not kept:
        return None
    first = issuing.take_numbers(session, licence_type, issuer.code, len(kept))[0]
    frame = {"lines": [line for line, _ in kept], "serial": first.serial, "status_index": first.status_index,
             "day": day.isoformat(), "type": frame_type, "definition": definition}
    job.chunks = [*(job.chunks or []), frame]
    return Chunk(job.id, frame, _licences(deps, issuer, job, frame, [checked for _, checked in kept]))


def rebuild(session: Session, deps: Deps, issuer: Issuer, job: BulkJob, frame: dict[str, Any]) -> Chunk:
    """A chunk reserved by an earlier run, built again exactly as it was. :raise ChunkLost:"""
    rows = {row.line: row for row in session.execute(
        select(*ROW_COLUMNS).where(BulkRow.job_id == job.id, BulkRow.line.in_(frame["lines"])))}
    as_issued, day = _type_of(job, frame["type"]), date.fromisoformat(frame["day"])
    checked = []
    for line in frame["lines"]:
        row = rows.get(line)
        pending = row is not None and row.status == "pending"
        passed = checked_rows.trusted_passed(deps, row, frame["definition"]) if pending else None
        if passed is None:
            raise ChunkLost(f"bulk job {job.id}: line {line} no longer holds the values its licence was signed with")
        checked.append(checked_rows.complete(as_issued, passed, day))
    return Chunk(job.id, frame, _licences(deps, issuer, job, frame, checked))


def issue(session: Session, job: BulkJob, chunk: Chunk, signatures) -> None:
    """Step (3): the chunk's licences written sealed and valid, its rows issued (the caller renews
    the lease and commits): one INSERT of the licences, one of their events, one UPDATE of the
    rows, not the ORM's unit of work (about a third of the licences side's CPU per bulk licence)."""
    now = utcnow()
    licences = [{**lic, **issuing.sealed_values(signature, now), "created_at": now}
                for lic, signature in zip(chunk.licences, signatures, strict=True)]
    _insert(session, Licence.__table__, licences)
    _insert(session, LicenceEvent.__table__, [
        {**issuing.issued_event(lic["id"], "bulk_issue", job.created_by, job.client_id), "at": now}
        for lic in licences])
    known = issuing.recipients_by_index(session, [lic["holder_index"] for lic in licences])
    for lic in licences:
        issuing.tell_issued(session, chunk.frame["type"]["name"], SimpleNamespace(**lic),
                            known.get(lic["holder_index"], []))
    lines = chunk.frame["lines"]
    table = BulkRow.__table__
    session.execute(update(table).where(table.c.job_id == job.id, table.c.line.in_(lines)).values(
        status="issued", licence_id=case(dict(zip(lines, (lic["id"] for lic in licences), strict=True)),
                                         value=table.c.line)))
    job.issued += len(lines)
    job.chunks = [frame for frame in job.chunks or [] if frame["lines"][0] != lines[0]]
    job.last_error = None


def _insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``rows`` (each with every column it sets: COPY applies no Python-side default) into
    ``table``: on PostgreSQL as one COPY stream, elsewhere with one executemany INSERT; a
    driver error raised as SQLAlchemy's, as on the other path."""
    connection = driver_for_rows(session, insert(table), rows)
    if connection is None:
        return
    columns = list(rows[0])
    # COPY takes each value as text, past the columns' types: UTCDateTime's refusal of a naive
    # datetime (which PostgreSQL would read as the session's time zone) is checked here instead.
    if any(value.tzinfo is None for row in rows for value in row.values() if isinstance(value, datetime)):
        raise ValueError(f"naive datetime given for {table.name}; store aware UTC datetimes only")
    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    driver = connection.connection.driver_connection  # psycopg's, under the session's transaction
    with driver_errors(sql, None), driver.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([row[column] for column in columns])


def _licences(deps: Deps, issuer: Issuer, job: BulkJob, frame: dict[str, Any],
              checked: list[issuing.Checked]) -> list[dict[str, Any]]:
    identifiers = LicenseIdentifiers(job.type_code, issuer.code)
    numbers = issuing.Numbers(frame["serial"], frame["status_index"]).following(len(checked))
    day = date.fromisoformat(frame["day"])
    return [issuing.pending_values(deps, issuer, one, taken, identifiers=identifiers, issue_date=day,
                                   idempotency_key=f"bulk:{job.id}:{line}")
            for line, one, taken in zip(frame["lines"], checked, numbers, strict=True)]


def _type_of(job: BulkJob, frame_type: dict[str, Any]) -> Any:
    """The job's type as a chunk's frame saw it: a chunk's documents do not change if the type
    is edited while the chunk is at the seal node."""
    return SimpleNamespace(code=job.type_code, **frame_type)


def _refuse(session: Session, job: BulkJob, refused: list[tuple[Row, Problem]]) -> None:
    """The rows invalid, each with its reason, in one statement."""
    if not refused:
        return
    table = BulkRow.__table__
    session.execute(table.update().where(table.c.job_id == job.id, table.c.line == bindparam("_line"))
                    .values(status="invalid", error=bindparam("_error")),
                    [{"_line": row.line, "_error": f"{exc.code}: {exc.detail}"[:255]} for row, exc in refused])
    job.invalid += len(refused)


def legacy_batches(session: Session, job: BulkJob) -> list[list[BulkRow]]:
    """Rows whose pending licence an earlier version's runner made, by seal batch, in line order."""
    batches: dict[str | None, list[BulkRow]] = {}
    for row in session.scalars(select(BulkRow).where(BulkRow.job_id == job.id, BulkRow.status == "pending",
                                                     BulkRow.licence_id.is_not(None)).order_by(BulkRow.line)):
        batches.setdefault(row.batch, []).append(row)
    return list(batches.values())


def legacy_licences(session: Session, rows: list[BulkRow]) -> list[Licence]:
    found = {lic.id: lic for lic in session.scalars(select(Licence).where(
        Licence.id.in_([row.licence_id for row in rows])))}
    return [found[row.licence_id] for row in rows]


def issue_legacy(session: Session, job: BulkJob, rows: list[BulkRow], licences: list[Licence], signatures) -> None:
    """An earlier version's batch: its licences still pending (locked first) marked valid, its
    rows issued (the caller renews the lease and commits)."""
    still_pending = set(session.scalars(select(Licence.id).where(
        Licence.id.in_([lic.id for lic in licences]), Licence.status == PENDING).with_for_update()))
    for lic, signature in zip(licences, signatures, strict=True):
        if lic.id in still_pending:
            issuing.mark_sealed(session, lic, signature, actor=job.created_by, client_id=job.client_id,
                                action="bulk_issue")
            job.issued += 1
    session.execute(update(BulkRow).where(BulkRow.job_id == job.id, BulkRow.line.in_([row.line for row in rows]))
                    .values(status="issued").execution_options(synchronize_session=False))
    job.last_error = None
