"""Bulk issuance (批量发证): validate every row first, then issue in sealed batches, resumably.

A job is created from CSV (a header line naming ``holder_code``, ``holder_name``, optional
``type_code``, ``valid_from``/``valid_until`` and the type's face fields) or JSON lines (objects
with ``holder_code``, ``holder_name``, ``fields`` and the optional ``type_code`` and dates).
Every row is checked exactly as a single issuance would be, plus: a row naming a type names
the job's (a job issues one type), and a row asking for the same licence as an earlier row
(same holder, name, face and validity) is a duplicate. Bad rows are kept with their line
number and reason (``<code>: <detail>``) and never issued. Rows are stored encrypted (they
hold ID numbers).

Running a job takes the pending rows in line order (each with the values it passed its check
with at the upload, :mod:`licenses.bulk_rows`), a batch at a time: (1) a pending licence
per row, committed, with the row pointing at it; (2) one call to the seal node's batch
signing API, whose idempotency key is derived from the batch's licence ids; (3) the licences
marked valid and the rows issued, committed. A crash anywhere repeats at most the step that
was interrupted: (1) finds the licences already made (their idempotency key
``bulk:<job>:<line>`` is unique), (2) is replayed by the seal node, (3) marks only licences
still pending, so nothing is issued or signed twice.

**One runner at a time**: a runner leases the job (``runner``, ``lease_until``, taken by a
conditional UPDATE) and renews the lease in the same transaction as steps (1) and (3), so two
runners never write the same batch; a second runner is refused (409 ``bulk_job_running``)
while the lease is live. A runner that stops on its own releases the lease; a killed one's
lapses after ``lease_seconds`` and the next run (the API, the CLI, or the beat task
``licenses.resume_bulk_jobs``) carries on where it stopped.
"""

from __future__ import annotations

import json
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from common.crypto.gm import sm3
from common.db import utcnow
from common.errors import Conflict, NotFound, Problem, ValidationFailed
from common.values.codes import LicenseIdentifiers

from . import bulk_rows, catalogue, issuing
from .issuing import Deps, Issuer
from .models import PENDING, BulkJob, BulkRow, Licence, LicenceEvent, LicenceType, new_id

RUNNABLE = ("validated", "running")


class JobNotFound(NotFound):
    code, title = "bulk_job_not_found", "No such bulk job"


class TooManyRows(Problem):
    status, code, title = 413, "too_many_rows", "The job has too many rows"


class JobBusy(Conflict):
    code, title = "bulk_job_running", "Another runner is working on this bulk job"


class DuplicateRow(ValidationFailed):
    code, title = "duplicate_row", "The row asks for the same licence as an earlier row"


def create_job(session: Session, deps: Deps, issuer: Issuer, type_code: str, text: str, fmt: str, *,
               max_rows: int) -> BulkJob:
    """Validate every row and store the job. :raise Problem: a job-level error (nothing stored)."""
    licence_type = catalogue.get_type(session, type_code)
    issuing.check_issuer(issuer, licence_type)
    parsed = bulk_rows.parse_rows(text, fmt, licence_type)
    if not parsed:
        raise ValidationFailed("the upload has no rows", code="no_rows")
    if len(parsed) > max_rows:
        raise TooManyRows(f"at most {max_rows} rows per job")
    job = BulkJob(type_code=licence_type.code, issuer_code=issuer.code, issuer_name=issuer.name,
                  created_by=issuer.actor, client_id=issuer.client_id, total=len(parsed))
    session.add(job)
    session.flush()
    first_line: dict[str, int] = {}  # request hash -> the line that asked for it first
    definition = bulk_rows.definition_of(licence_type)
    for line, item, error in parsed:
        passed = None
        if error is None:
            try:
                request = bulk_rows.row_request(session, licence_type, item)
                checked = issuing.check_request(session, issuer, request)
                if checked.request_hash in first_line:
                    raise DuplicateRow(f"the same licence as line {first_line[checked.request_hash]}")
                first_line[checked.request_hash] = line
                passed = bulk_rows.passed_values(checked, request, definition)
            except Problem as exc:
                error = f"{exc.code}: {exc.detail}"
        payload = {"enc": deps.cipher.encrypt("bulk_row", json.dumps(item, ensure_ascii=False))} if item else {}
        if passed:
            payload["checked"] = bulk_rows.seal_passed(deps, job.id, line, passed)
        session.add(BulkRow(job_id=job.id, line=line, payload=payload, status="invalid" if error else "pending",
                            error=error[:255] if error else None))
        job.invalid += bool(error)
    if job.invalid == job.total:
        job.status = "done"
    session.commit()
    return job


def get_job(session: Session, issuer: Issuer, job_id: str) -> BulkJob:
    job = session.get(BulkJob, job_id)
    if job is None or job.issuer_code != issuer.code:
        raise JobNotFound(f"no bulk job {job_id}")
    return job


def run_job(session: Session, deps: Deps, job: BulkJob, *, batch: int = 100, max_seconds: float = 20.0,
            lease_seconds: float = 60.0, inflight: int = 1) -> BulkJob:
    """Issue pending rows until done or ``max_seconds`` pass (call again to continue).

    ``inflight``: how many batches the seal node may be signing at once (its workers sign
    batches in parallel; one batch at a time leaves all but one of them idle).

    :raise JobBusy: another runner holds the job's lease.
    :raise SealUnavailable: the job stays resumable; ``last_error`` says why.
    """
    from common.peers.seal_client import SealUnavailable

    started = time.monotonic()
    runner = new_id()
    lease = _Lease(session, job, runner, lease_seconds)
    if not lease.renew():
        session.rollback()
        session.refresh(job)
        if job.status not in RUNNABLE:
            return job
        raise JobBusy(f"another runner holds bulk job {job.id} until {job.lease_until:%Y-%m-%dT%H:%M:%SZ}")
    session.commit()
    session.refresh(job)
    issuer = Issuer(job.issuer_code, job.issuer_name, job.created_by, job.client_id)
    licence_type = session.get(LicenceType, job.type_code)
    signer = ThreadPoolExecutor(inflight, thread_name_prefix="bulk-seal")
    try:
        seal_id = deps.seal.seal_for(job.issuer_code, licence_type.seal_kind)
        # Pipelined: the seal node signs up to ``inflight`` batches at once (calls on the signer
        # threads) with one more queued behind them, while this thread prepares the next batch
        # (step 1) and marks the oldest signed one (step 3), in order.
        signing: deque[_Batch] = deque()
        submitted = False
        while True:  # at least one batch per call, then until max_seconds have passed
            while len(signing) <= inflight and (not submitted or time.monotonic() - started < max_seconds):
                rows = _next_rows(session, job, batch, busy={b.key for b in signing})
                if not rows:
                    break
                rows, licences = _pending_licences(session, deps, issuer, job, licence_type, rows, lease)
                if not rows:
                    continue  # every row of this batch turned out invalid
                items = [(lic.document_sm3, lic.identifier) for lic in licences]
                signing.append(_Batch(rows, licences, signer.submit(
                    deps.seal.sign_batch, seal_id, items, idempotency_key=f"bulk:{job.id}:{rows[0].batch}")))
                submitted = True
            if not signing:  # nothing left, or the time is up
                if not _next_rows(session, job, 1):
                    job.status, job.finished_at = "done", utcnow()
                break
            oldest = signing.popleft()
            signatures = oldest.signing.result()
            if not lease.renew():  # a runner that took over after our lease lapsed finishes the batch
                session.rollback()
                return job
            _mark_issued(session, job, licence_type, oldest.rows, oldest.licences, signatures)
            session.commit()
    except SealUnavailable as exc:
        session.rollback()
        job.last_error = exc.detail[:255]
        lease.release()
        session.commit()
        raise
    except BaseException:
        session.rollback()  # a crash: the lease lapses on its own
        raise
    finally:
        signer.shutdown(wait=True)
    lease.release()
    session.commit()
    return job


@dataclass
class _Batch:
    rows: list[BulkRow]
    licences: list[Licence]
    signing: Future

    @property
    def key(self) -> str | None:
        return self.rows[0].batch


def resume_abandoned(session: Session, deps: Deps, *, batch: int, lease_seconds: float,
                     idle_seconds: float = 60.0, inflight: int = 1) -> int:
    """Run to the end every job left ``running`` with no live lease for ``idle_seconds``; how
    many were finished. A job that fails again (seal node down) is left for the next sweep."""
    from common.peers.seal_client import SealUnavailable

    idle = utcnow() - timedelta(seconds=idle_seconds)
    finished = 0
    for job in list(session.scalars(select(BulkJob).where(BulkJob.status == "running", BulkJob.lease_until < idle))):
        try:
            while job.status in RUNNABLE:
                run_job(session, deps, job, batch=batch, max_seconds=60, lease_seconds=lease_seconds,
                        inflight=inflight)
        except (JobBusy, SealUnavailable):
            continue
        finished += 1
    return finished


def _next_rows(session: Session, job: BulkJob, size: int, busy: set[str | None] | None = None) -> list[BulkRow]:
    """A batch interrupted after step (1), exactly as it was; otherwise the next ``size`` rows.
    ``busy``: the batches being signed now (not interrupted)."""
    pending = select(BulkRow).where(BulkRow.job_id == job.id, BulkRow.status == "pending")
    interrupted = session.scalar(select(BulkRow.batch).where(BulkRow.job_id == job.id, BulkRow.status == "pending",
                                                             BulkRow.batch.is_not(None),
                                                             BulkRow.batch.not_in({b for b in busy or () if b}))
                                 .limit(1))
    if interrupted is not None:
        return list(session.scalars(pending.where(BulkRow.batch == interrupted).order_by(BulkRow.line)))
    return list(session.scalars(pending.where(BulkRow.batch.is_(None)).order_by(BulkRow.line).limit(size)))


class _Lease:
    """The job's lease, renewed inside the caller's transaction (the caller commits)."""

    def __init__(self, session: Session, job: BulkJob, runner: str, seconds: float) -> None:
        self.session, self.job, self.runner, self.seconds = session, job, runner, seconds

    def renew(self) -> bool:
        """Take or extend the lease; False when another runner holds it (or the job is finished)."""
        now = utcnow()
        result = self.session.execute(
            update(BulkJob).where(BulkJob.id == self.job.id, BulkJob.status.in_(RUNNABLE),
                                  or_(BulkJob.runner.is_(None), BulkJob.runner == self.runner,
                                      BulkJob.lease_until < now))
            .values(runner=self.runner, status="running", lease_until=now + timedelta(seconds=self.seconds))
            .execution_options(synchronize_session=False))
        return result.rowcount == 1

    def release(self) -> None:
        self.job.runner, self.job.lease_until = None, utcnow()


def _mark_issued(session: Session, job: BulkJob, licence_type: LicenceType, rows: list[BulkRow],
                 licences: list[Licence], signatures) -> None:
    """Step (3): the batch's licences valid, its rows issued. Only licences still pending are
    marked (locked first), so a batch finished by someone else is not marked twice.

    What :func:`issuing.mark_sealed` does for one licence, as a few statements for the whole
    batch (one UPDATE of the licences with a parameter set each, one multi-row INSERT of events,
    one UPDATE of the rows): the ORM's unit of work cost about a third of the licences side's CPU
    per bulk licence. Holders the node knows are told through the outbox's one rule
    (:func:`issuing.tell_issued`), flushed with the batch."""
    still_pending = set(session.scalars(select(Licence.id).where(
        Licence.id.in_([lic.id for lic in licences]), Licence.status == PENDING).with_for_update()))
    known = issuing.recipients_by_index(session, [lic.holder_index for lic in licences])
    now = utcnow()
    marked = [(lic, sig) for lic, sig in zip(licences, signatures, strict=True) if lic.id in still_pending]
    if marked:
        table = Licence.__table__
        # One parameter set per licence; bind names must differ from the columns they SET.
        params = [{"_licence": lic.id, **{f"_{c}": v for c, v in issuing.sealed_values(sig, now).items()}}
                  for lic, sig in marked]
        session.execute(table.update().where(table.c.id == bindparam("_licence"))
                        .values({c: bindparam(f"_{c}") for c in issuing.sealed_values(marked[0][1], now)}), params)
        session.execute(insert(LicenceEvent.__table__), [
            issuing.issued_event(lic.id, "bulk_issue", job.created_by, job.client_id) for lic, _ in marked])
        for lic, _ in marked:
            issuing.tell_issued(session, licence_type.name, lic, known.get(lic.holder_index, []))
        job.issued += len(marked)
    session.execute(update(BulkRow).where(BulkRow.job_id == job.id, BulkRow.line.in_([row.line for row in rows]))
                    .values(status="issued").execution_options(synchronize_session=False))
    for row in rows:
        set_committed_value(row, "status", "issued")
    job.last_error = None


def _pending_licences(session: Session, deps: Deps, issuer: Issuer, job: BulkJob, licence_type: LicenceType,
                      rows: list[BulkRow], lease: _Lease) -> tuple[list[BulkRow], list[Licence]]:
    """Step (1): the rows' pending licences, made now unless a previous run made them (committed
    with the lease renewed). A row that no longer passes (the type was retired since the upload)
    becomes invalid.

    The new licences are inserted with one multi-row INSERT and the rows pointed at them with one
    UPDATE (a parameter set per row), not through the ORM's unit of work (see :func:`_mark_issued`).

    :raise JobBusy: the lease was lost (another runner took over after it lapsed)."""
    kept: list[BulkRow] = []
    made: dict[int, Licence | SimpleNamespace] = {}
    fresh: list[tuple[BulkRow, issuing.Checked]] = []
    definition = bulk_rows.definition_of(licence_type)
    try:  # the type and issuer, once for the batch (every row of a job has the job's)
        issuing.check_issuer(issuer, licence_type)
        identifiers, refused = LicenseIdentifiers(licence_type.code, issuer.code), None
    except Problem as exc:
        identifiers, refused = None, exc
    with session.no_autoflush:
        existing = {lic.id: lic for lic in session.scalars(select(Licence).where(
            Licence.id.in_([r.licence_id for r in rows if r.licence_id])))}
        for row in rows:
            if row.licence_id in existing:
                made[row.line] = existing[row.licence_id]
                kept.append(row)
                continue
            try:
                if refused is not None:
                    raise refused
                fresh.append((row, bulk_rows.check_row(session, deps, issuer, licence_type, row, definition)))
            except Problem as exc:
                row.status, row.error = "invalid", f"{exc.code}: {exc.detail}"[:255]
                job.invalid += 1
                continue
            kept.append(row)
        new: list[dict[str, Any]] = []
        if fresh:
            numbers = issuing.take_numbers(session, licence_type, issuer.code, len(fresh))
            for (row, checked), taken in zip(fresh, numbers, strict=True):
                values = issuing.pending_values(deps, issuer, checked, taken, identifiers=identifiers,
                                                idempotency_key=f"bulk:{job.id}:{row.line}")
                made[row.line] = SimpleNamespace(**values)  # what steps (2) and (3) read of it
                new.append(values)
        if new:
            session.execute(insert(Licence.__table__), new)
        # A batch is keyed once, when its licences are first made; an interrupted batch keeps its key.
        key = (kept[0].batch if kept and all(row.batch for row in kept)
               else sm3(",".join(made[row.line].id for row in kept).encode()).hex()[:32])
        changed = [row for row in kept if row.batch != key or row.licence_id != made[row.line].id]
        if changed:
            table = BulkRow.__table__
            session.execute(table.update().where(table.c.job_id == job.id, table.c.line == bindparam("row"))
                            .values(licence_id=bindparam("licence"), batch=key),
                            [{"row": row.line, "licence": made[row.line].id} for row in changed])
            for row in changed:
                set_committed_value(row, "licence_id", made[row.line].id)
                set_committed_value(row, "batch", key)
    if not lease.renew():
        session.rollback()
        raise JobBusy(f"bulk job {job.id} was taken over by another runner")
    session.commit()
    return kept, [made[row.line] for row in kept]


def job_view(session: Session, job: BulkJob) -> dict[str, Any]:
    errors = [{"line": r.line, "code": r.error.split(":", 1)[0], "reason": r.error} for r in session.scalars(
        select(BulkRow).where(BulkRow.job_id == job.id, BulkRow.status == "invalid").order_by(BulkRow.line))]
    pending = session.scalar(select(func.count()).select_from(BulkRow).where(BulkRow.job_id == job.id,
                                                                               BulkRow.status == "pending"))
    return {"id": job.id, "type_code": job.type_code, "issuer_code": job.issuer_code, "status": job.status,
            "total": job.total, "invalid": job.invalid, "issued": job.issued, "pending": pending,
            "last_error": job.last_error, "errors": errors, "created_at": job.created_at,
            "finished_at": job.finished_at}
