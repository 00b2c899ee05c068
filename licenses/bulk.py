"""Bulk issuance (批量发证): validate every row first, then issue in sealed batches, resumably.

A job is created from CSV (a header line naming ``holder_code``, ``holder_name``, optional
``valid_from``/``valid_until`` and the type's face fields) or JSON lines (objects with
``holder_code``, ``holder_name``, ``fields`` and the optional dates). Every row is checked
exactly as a single issuance would be; bad rows are kept with their line number and reason
and never issued. Rows are stored encrypted (they hold ID numbers).

Running a job takes the pending rows in line order, a batch at a time: (1) a pending licence
per row, committed, with the row pointing at it; (2) one call to the seal node's batch
signing API, whose idempotency key is derived from the batch's licence ids; (3) the licences
marked valid and the rows issued, committed. A crash anywhere repeats at most the step that
was interrupted: (1) finds the licences already made, (2) is replayed by the seal node, so
nothing is issued or signed twice.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.crypto.gm import sm3
from common.db import utcnow
from common.errors import NotFound, Problem, ValidationFailed

from . import catalogue, issuing
from .issuing import Deps, Issuer, IssueRequest
from .models import BulkJob, BulkRow, Licence, LicenceType

BASE_COLUMNS = ("holder_code", "holder_name", "valid_from", "valid_until")


class JobNotFound(NotFound):
    code, title = "bulk_job_not_found", "No such bulk job"


class TooManyRows(Problem):
    status, code, title = 413, "too_many_rows", "The job has too many rows"


def _rows(text: str, fmt: str, licence_type: LicenceType) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line, request fields or None, parse error or None)`` for each data line."""
    out: list[tuple[int, dict[str, Any] | None, str | None]] = []
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if not isinstance(item, dict):
                    raise ValueError("not an object")
                out.append((number, item, None))
            except ValueError as exc:
                out.append((number, None, f"not a JSON object: {exc}"))
        return out
    if fmt != "csv":
        raise ValidationFailed("format is csv or jsonl", code="invalid_format")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    names = {spec.name for spec in catalogue.field_specs(licence_type)}
    if not header or not {"holder_code", "holder_name"} <= set(header):
        raise ValidationFailed("the CSV header must name holder_code and holder_name", code="invalid_header")
    unknown = set(header) - names - set(BASE_COLUMNS)
    if unknown:
        raise ValidationFailed(f"unknown columns: {', '.join(sorted(unknown))}", code="invalid_header")
    for values in reader:
        number = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            out.append((number, None, f"{len(values)} columns, the header has {len(header)}"))
            continue
        row = dict(zip(header, values, strict=True))
        out.append((number, {"holder_code": row.get("holder_code"), "holder_name": row.get("holder_name"),
                             "valid_from": row.get("valid_from") or None, "valid_until": row.get("valid_until") or None,
                             "fields": {k: v for k, v in row.items() if k in names and v != ""}}, None))
    return out


def _request(type_code: str, item: dict[str, Any]) -> IssueRequest:
    from datetime import date

    def day(value: Any):
        if value in (None, ""):
            return None
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValidationFailed(f"{value!r} is not a date YYYY-MM-DD", code="invalid_validity") from None

    return IssueRequest(type_code=type_code, holder_code=item.get("holder_code"), holder_name=item.get("holder_name"),
                        fields=item.get("fields"), valid_from=day(item.get("valid_from")),
                        valid_until=day(item.get("valid_until")))


def create_job(session: Session, deps: Deps, issuer: Issuer, type_code: str, text: str, fmt: str, *,
               max_rows: int) -> BulkJob:
    """Validate every row and store the job. :raise Problem: a job-level error (nothing stored)."""
    licence_type = catalogue.get_type(session, type_code)
    issuing.check_issuer(issuer, licence_type)
    parsed = _rows(text, fmt, licence_type)
    if not parsed:
        raise ValidationFailed("the upload has no rows", code="no_rows")
    if len(parsed) > max_rows:
        raise TooManyRows(f"at most {max_rows} rows per job")
    job = BulkJob(type_code=licence_type.code, issuer_code=issuer.code, issuer_name=issuer.name,
                  created_by=issuer.actor, client_id=issuer.client_id, total=len(parsed))
    session.add(job)
    session.flush()
    for line, item, error in parsed:
        if error is None:
            try:
                issuing.check_request(session, issuer, _request(licence_type.code, item))
            except Problem as exc:
                error = f"{exc.code}: {exc.detail}"
        payload = {"enc": deps.cipher.encrypt("bulk_row", json.dumps(item, ensure_ascii=False))} if item else {}
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


def run_job(session: Session, deps: Deps, job: BulkJob, *, batch: int = 100, max_seconds: float = 20.0) -> BulkJob:
    """Issue pending rows until done or ``max_seconds`` pass (call again to continue).

    :raise SealUnavailable: the job stays resumable; ``last_error`` says why.
    """
    from common.peers.seal_client import SealUnavailable

    started = time.monotonic()
    issuer = Issuer(job.issuer_code, job.issuer_name, job.created_by, job.client_id)
    licence_type = session.get(LicenceType, job.type_code)
    seal_id = deps.seal.seal_for(job.issuer_code, licence_type.seal_kind)
    job.status = "running"
    session.commit()
    while True:  # at least one batch per call, then until max_seconds have passed
        rows = list(session.scalars(select(BulkRow).where(BulkRow.job_id == job.id, BulkRow.status == "pending")
                                    .order_by(BulkRow.line).limit(batch)))
        if not rows:
            job.status, job.finished_at = "done", utcnow()
            session.commit()
            break
        rows, licences = _pending_licences(session, deps, issuer, job, rows)
        if not rows:
            continue
        ids = ",".join(lic.id for lic in licences)
        try:
            signatures = deps.seal.sign_batch(seal_id, [(lic.document_sm3, lic.identifier) for lic in licences],
                                              idempotency_key=f"bulk:{job.id}:{sm3(ids.encode()).hex()[:32]}")
        except SealUnavailable as exc:
            job.last_error = exc.detail[:255]
            session.commit()
            raise
        known = issuing.recipients_by_index(session, [lic.holder_index for lic in licences])
        for row, licence, signature in zip(rows, licences, signatures, strict=True):
            issuing.mark_sealed(session, licence, signature, actor=job.created_by, client_id=job.client_id,
                                action="bulk_issue", known=known.get(licence.holder_index, []))
            row.status = "issued"
        job.issued += len(rows)
        job.last_error = None
        session.commit()
        if time.monotonic() - started >= max_seconds:
            break
    return job


def _pending_licences(session: Session, deps: Deps, issuer: Issuer, job: BulkJob,
                      rows: list[BulkRow]) -> tuple[list[BulkRow], list[Licence]]:
    """The rows' pending licences, made now unless a previous run made them (committed).

    A row that no longer passes (the type was retired since the upload) becomes invalid."""
    kept: list[BulkRow] = []
    made: dict[int, Licence] = {}
    fresh: list[tuple[BulkRow, issuing.Checked]] = []
    with session.no_autoflush:
        existing = {lic.id: lic for lic in session.scalars(select(Licence).where(
            Licence.id.in_([r.licence_id for r in rows if r.licence_id])))}
        for row in rows:
            if row.licence_id in existing:
                made[row.line] = existing[row.licence_id]
                kept.append(row)
                continue
            item = json.loads(deps.cipher.decrypt("bulk_row", row.payload["enc"]))
            try:
                fresh.append((row, issuing.check_request(session, issuer, _request(job.type_code, item))))
            except Problem as exc:
                row.status, row.error = "invalid", f"{exc.code}: {exc.detail}"[:255]
                job.invalid += 1
                continue
            kept.append(row)
        if fresh:
            numbers = issuing.take_numbers(session, fresh[0][1].licence_type, issuer.code, len(fresh))
            for (row, checked), taken in zip(fresh, numbers, strict=True):
                licence = issuing.new_pending(session, deps, issuer, checked, numbers=taken,
                                              idempotency_key=f"bulk:{job.id}:{row.line}")
                row.licence_id = licence.id
                made[row.line] = licence
    session.commit()
    return kept, [made[row.line] for row in kept]


def job_view(session: Session, job: BulkJob) -> dict[str, Any]:
    errors = [{"line": r.line, "reason": r.error} for r in session.scalars(
        select(BulkRow).where(BulkRow.job_id == job.id, BulkRow.status == "invalid").order_by(BulkRow.line))]
    pending = session.scalar(select(func.count()).select_from(BulkRow).where(BulkRow.job_id == job.id,
                                                                               BulkRow.status == "pending"))
    return {"id": job.id, "type_code": job.type_code, "issuer_code": job.issuer_code, "status": job.status,
            "total": job.total, "invalid": job.invalid, "issued": job.issued, "pending": pending,
            "last_error": job.last_error, "errors": errors, "created_at": job.created_at,
            "finished_at": job.finished_at}
