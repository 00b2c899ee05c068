"""Bulk issuance (批量发证): validate every row first, then issue in sealed batches, resumably.

A job is created from CSV (a header line naming ``holder_code``, ``holder_name``, optional
``type_code``, ``valid_from``/``valid_until`` and the type's face fields) or JSON lines (objects
with ``holder_code``, ``holder_name``, ``fields`` and the optional ``type_code`` and dates).
Every row is checked exactly as a single issuance would be, plus: a row naming a type names
the job's (a job issues one type), and a row asking for the same licence as an earlier row
(same holder, name, face and validity) is a duplicate. Bad rows are kept with their line
number and reason (``<code>: <detail>``) and never issued. Rows are stored encrypted (they
hold ID numbers).

Running a job issues the pending rows in line order, a chunk (one seal batch) at a time, each
licence written once, sealed and valid, in the transaction that marks its row issued; a chunk
interrupted by a crash is rebuilt exactly and replayed by the seal node, so nothing is issued
or signed twice and nothing is visible unsealed (:mod:`licenses.bulk.chunks`).

**One runner at a time**: a runner leases the job (``runner``, ``lease_until``, taken by a
conditional UPDATE) and renews the lease in the same transaction as each chunk's reservation
and issue, so two runners never write the same chunk; a second runner is refused (409 ``bulk_job_running``)
while the lease is live. A renewal requires the lease still be the runner's own: a runner whose
lease lapsed and was taken over stops (:class:`_Lease`). A job that cannot go on is left
``failed`` (a department without a usable seal is not that: nothing was signed, it stays
resumable). A runner that stops on its own releases the lease; a killed one's
lapses after ``lease_seconds`` and the next run (the API, the CLI, or the beat task
``licenses.resume_bulk_jobs``) carries on where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Conflict, NotFound, Problem, ValidationFailed, traceback_without_messages

from .. import catalogue, issuing
from ..issuers import Issuer, check_issuer
from ..issuing import Deps
from ..models import BulkJob, BulkRow, LicenceType, new_id
from . import checked_rows, chunks

RUNNABLE = ("validated", "running")

log = logging.getLogger(__name__)


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
    check_issuer(issuer, licence_type)
    parsed = checked_rows.parse_rows(text, fmt, licence_type)
    if not parsed:
        raise ValidationFailed("the upload has no rows", code="no_rows")
    if len(parsed) > max_rows:
        raise TooManyRows(f"at most {max_rows} rows per job")
    job = BulkJob(type_code=licence_type.code, issuer_code=issuer.code, issuer_name=issuer.name,
                  created_by=issuer.actor, client_id=issuer.client_id, total=len(parsed))
    session.add(job)
    session.flush()
    first_line: dict[str, int] = {}  # request hash -> the line that asked for it first
    definition = checked_rows.definition_of(licence_type)
    for line, item, error in parsed:
        passed = None
        if error is None:
            try:
                request = checked_rows.row_request(session, licence_type, item)
                checked = issuing.check_request(session, issuer, request)
                if checked.request_hash in first_line:
                    raise DuplicateRow(f"the same licence as line {first_line[checked.request_hash]}")
                first_line[checked.request_hash] = line
                passed = checked_rows.passed_values(checked, request, definition)
            except Problem as exc:
                error = f"{exc.code}: {exc.detail}"
        payload = {"enc": deps.cipher.encrypt("bulk_row", json.dumps(item, ensure_ascii=False))} if item else {}
        if passed:
            payload["checked"] = checked_rows.seal_passed(deps, job.id, line, passed)
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

    ``batch``: rows per chunk (one seal batch); ``inflight``: how many chunks the seal node may be
    signing at once (its workers sign batches in parallel; one at a time leaves all but one idle).

    A runner whose lease was taken over (it lapsed) stops, writing nothing more. A job that
    cannot go on (a reserved chunk's rows altered, the seal node refusing) is left ``failed``,
    ``last_error`` saying why.

    :raise JobBusy: another runner holds the job's lease.
    :raise SealUnavailable: the job stays resumable; ``last_error`` says why.
    :raise Problem: the issuing department has no usable seal (``seal_for`` refused): nothing
        was signed, the job stays resumable.
    """
    from common.peers.seal_client import SealUnavailable

    started = time.monotonic()
    lease = _Lease(session, job, new_id(), lease_seconds)
    if not lease.take():
        session.rollback()
        session.refresh(job)
        if job.status not in RUNNABLE:
            return job
        raise JobBusy(f"another runner holds bulk job {job.id} until {job.lease_until:%Y-%m-%dT%H:%M:%SZ}")
    session.commit()
    session.refresh(job)  # from here on only this runner writes the job, while its lease holds
    issuer = Issuer(job.issuer_code, job.issuer_name, job.created_by, job.client_id)
    licence_type = session.get(LicenceType, job.type_code)
    signer = ThreadPoolExecutor(inflight, thread_name_prefix="bulk-seal")
    seal_id = None
    try:
        seal_id = deps.seal.seal_for(job.issuer_code, licence_type.seal_kind)
        _finish_legacy(session, deps, job, seal_id, lease)
        # Chunks an earlier run reserved, rebuilt as they were; then new ones after their lines.
        reserved = deque(chunks.rebuild(session, deps, issuer, job, frame) for frame in job.chunks or [])
        after = max((frame["lines"][-1] for frame in job.chunks or []), default=0)
        # Pipelined: the seal node signs up to ``inflight`` chunks at once (calls on the signer
        # threads) with one more queued behind them, while this thread reserves the next chunk
        # (step 1) and issues the oldest signed one (step 3), in order.
        signing: deque[tuple[chunks.Chunk, Future]] = deque()
        submitted = False
        while True:  # at least one chunk per call, then until max_seconds have passed
            while len(signing) <= inflight and (not submitted or time.monotonic() - started < max_seconds):
                if reserved:
                    chunk = reserved.popleft()
                else:
                    rows = chunks.unreserved_rows(session, job, after, batch)
                    if not rows:
                        break
                    after = rows[-1].line
                    chunk = chunks.reserve(session, deps, issuer, job, licence_type, rows)
                    lease.commit()
                    if chunk is None:
                        continue  # every row of this chunk turned out invalid
                signing.append((chunk, signer.submit(deps.seal.sign_batch, seal_id, chunk.items,
                                                     idempotency_key=chunk.key)))
                submitted = True
            if not signing:  # nothing left, or the time is up
                break
            chunk, signed = signing.popleft()
            signatures = signed.result()
            lease.renew()  # before the chunk's writes, in their transaction
            chunks.issue(session, job, chunk, signatures)
            session.commit()
        # done: no chunk reserved and no row pending (a row of a reserved chunk is pending too)
        done = not job.chunks and not chunks.unreserved_rows(session, job, 0, 1)
        lease.release(**({"status": "done", "finished_at": utcnow()} if done else {}))
    except LeaseLost:  # another runner took the job over: it carries on from the database
        session.rollback()
        session.refresh(job)
    except SealUnavailable as exc:  # resumable: the next run carries on
        session.rollback()
        _release_quietly(lease, last_error=exc.detail[:255])
        raise
    except (chunks.ChunkLost, Problem) as exc:
        session.rollback()
        if seal_id is None:
            # refused before anything was signed (the department has no usable seal yet, e.g.
            # it is suspended): nothing to replay, so the job stays resumable once it has one
            _release_quietly(lease, last_error=f"{type(exc).__name__}: {exc}"[:255])
            raise
        # not resumable as it stands (a chunk's rows altered, the seal refused, even a replay):
        # the job fails, saying why, rather than being retried by every sweep
        reason = f"{type(exc).__name__}: {exc.detail if isinstance(exc, Problem) else exc}"
        _release_quietly(lease, status="failed", finished_at=utcnow(), last_error=reason[:255])
    except BaseException:
        session.rollback()  # a crash: the lease lapses on its own
        raise
    finally:
        signer.shutdown(wait=True)
    return job


def _release_quietly(lease: _Lease, **values: Any) -> None:
    """Release after a failure; a lease lost meanwhile leaves the job to its new runner."""
    try:
        lease.release(**values)
    except LeaseLost:
        lease.session.rollback()
        lease.session.refresh(lease.job)


def resume_abandoned(session: Session, deps: Deps, *, batch: int, lease_seconds: float,
                     idle_seconds: float = 60.0, inflight: int = 1) -> int:
    """Run to the end every job left ``running`` with no live lease for ``idle_seconds``; how
    many were finished. A job that fails again (seal node down) is left for the next sweep; one
    that cannot go on (``failed``) or breaks otherwise does not stop the sweep for the others."""
    idle = utcnow() - timedelta(seconds=idle_seconds)
    finished = 0
    for job in list(session.scalars(select(BulkJob).where(BulkJob.status == "running", BulkJob.lease_until < idle))):
        try:
            while job.status in RUNNABLE:
                run_job(session, deps, job, batch=batch, max_seconds=60, lease_seconds=lease_seconds,
                        inflight=inflight)
        except Problem as exc:  # busy (another runner), or the seal node down: the next sweep
            log.warning("bulk job %s left for the next sweep: %s: %s", job.id, exc.code, exc.detail)
            continue
        except Exception as exc:
            session.rollback()
            log.error("bulk job %s could not be resumed: %s\n%s", job.id, type(exc).__name__,
                      traceback_without_messages(exc))
            continue
        if job.status == "failed":
            log.error("bulk job %s failed: %s", job.id, job.last_error)
        else:
            finished += 1
    return finished


def _finish_legacy(session: Session, deps: Deps, job: BulkJob, seal_id: str, lease: _Lease) -> None:
    """Batches an earlier version's runner left with pending licences, signed (replayed by the
    seal node under their key) and issued. :raise LeaseLost:"""
    for rows in chunks.legacy_batches(session, job):
        licences = chunks.legacy_licences(session, rows)
        signatures = deps.seal.sign_batch(seal_id, [(lic.document_sm3, lic.identifier) for lic in licences],
                                          idempotency_key=f"bulk:{job.id}:{rows[0].batch}")
        lease.renew()
        chunks.issue_legacy(session, job, rows, licences, signatures)
        session.commit()


class LeaseLost(Exception):
    """The runner's lease was taken over (it lapsed): the runner stops and writes nothing more."""


class _Lease:
    """The job's lease, renewed inside the caller's transaction (the caller commits).

    Only :meth:`take` may claim a job with no runner or a lapsed lease; every later renewal
    requires the lease still be this runner's. A runner that lapsed and was taken over must not
    take the job back (even once the other runner released it): its frames and counts in memory
    are stale, and writing them would drop another's frame or re-reserve lines under a key the
    seal node already signed other documents under."""

    def __init__(self, session: Session, job: BulkJob, runner: str, seconds: float) -> None:
        self.session, self.job, self.runner, self.seconds = session, job, runner, seconds

    def take(self) -> bool:
        """Claim the job; False when another runner holds it (or the job is finished)."""
        now = utcnow()
        return self._update(or_(BulkJob.runner.is_(None), BulkJob.lease_until < now), runner=self.runner,
                            status="running", lease_until=now + timedelta(seconds=self.seconds))

    def renew(self) -> None:
        """Extend the lease (flushing the caller's work first). :raise LeaseLost:"""
        if not self._update(BulkJob.runner == self.runner, lease_until=utcnow() + timedelta(seconds=self.seconds)):
            raise LeaseLost(f"bulk job {self.job.id} was taken over by another runner")

    def commit(self) -> None:
        """Renew the lease and commit the caller's work with it. :raise LeaseLost: (nothing of
        the work is kept once the caller rolls back)"""
        self.renew()
        self.session.commit()

    def release(self, **values: Any) -> None:
        """Give the lease up with the job's final ``values`` (status, last_error...), only if it
        is still this runner's; committed, and the job read again. :raise LeaseLost:"""
        if not self._update(BulkJob.runner == self.runner, runner=None, lease_until=utcnow(), **values):
            raise LeaseLost(f"bulk job {self.job.id} was taken over by another runner")
        self.session.commit()
        self.session.refresh(self.job)

    def _update(self, condition, **values: Any) -> bool:
        self.session.flush()  # the caller's changes to the job go first, in the same transaction
        result = self.session.execute(
            update(BulkJob).where(BulkJob.id == self.job.id, BulkJob.status.in_(RUNNABLE), condition)
            .values(**values).execution_options(synchronize_session=False))
        return result.rowcount == 1


def job_view(session: Session, job: BulkJob) -> dict[str, Any]:
    errors = [{"line": r.line, "code": r.error.split(":", 1)[0], "reason": r.error} for r in session.scalars(
        select(BulkRow).where(BulkRow.job_id == job.id, BulkRow.status == "invalid").order_by(BulkRow.line))]
    pending = session.scalar(select(func.count()).select_from(BulkRow).where(BulkRow.job_id == job.id,
                                                                               BulkRow.status == "pending"))
    return {"id": job.id, "type_code": job.type_code, "issuer_code": job.issuer_code, "status": job.status,
            "total": job.total, "invalid": job.invalid, "issued": job.issued, "pending": pending,
            "last_error": job.last_error, "errors": errors, "created_at": job.created_at,
            "finished_at": job.finished_at}
