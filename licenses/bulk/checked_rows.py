"""A bulk job's rows: parsed from the upload (CSV or JSON lines), the issuance each asks for,
and the values a row passed its check with, stored with it at the upload (encrypted, bound to
its job and line) so the runner does not check it all again (:mod:`licenses.bulk.chunks`)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

import structlog
from sqlalchemy.orm import Session

from common.crypto.gm import GMError, sm3
from common.errors import ValidationFailed

from .. import catalogue, issuing
from ..issuers import Issuer
from ..issuing import Deps, IssueRequest
from ..models import LicenceType

log = structlog.get_logger("xsn.licenses.bulk")

BASE_COLUMNS = ("holder_code", "holder_name", "type_code", "valid_from", "valid_until")


class TypeMismatch(ValidationFailed):
    code, title = "type_mismatch", "The row names another licence type than the job's"


def parse_rows(text: str, fmt: str, licence_type: LicenceType) -> list[tuple[int, dict[str, Any] | None, str | None]]:
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
                out.append((number, None, f"invalid_row: not a JSON object: {exc}"))
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
            out.append((number, None, f"invalid_row: {len(values)} columns, the header has {len(header)}"))
            continue
        row = dict(zip(header, values, strict=True))
        out.append((number, {"holder_code": row.get("holder_code"), "holder_name": row.get("holder_name"),
                             "type_code": row.get("type_code") or None, "valid_from": row.get("valid_from") or None,
                             "valid_until": row.get("valid_until") or None,
                             "fields": {k: v for k, v in row.items() if k in names and v != ""}}, None))
    return out


def row_request(session: Session, licence_type: LicenceType, item: dict[str, Any]) -> IssueRequest:
    """The issuance a row asks for. :raise UnknownType: :raise TypeMismatch: :raise ValidationFailed:"""

    def day(value: Any):
        if value in (None, ""):
            return None
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValidationFailed(f"{value!r} is not a date YYYY-MM-DD", code="invalid_validity") from None

    named = item.get("type_code")
    if named not in (None, "", licence_type.code, licence_type.slug):
        other = catalogue.get_type(session, str(named)[:64])
        raise TypeMismatch(f"the row names {other.slug}; this job issues {licence_type.slug}")
    return IssueRequest(type_code=licence_type.code, holder_code=item.get("holder_code"),
                        holder_name=item.get("holder_name"), fields=item.get("fields"),
                        valid_from=day(item.get("valid_from")), valid_until=day(item.get("valid_until")))


def checked_label(job_id: str, line: int) -> str:
    """The AEAD context (GCM additional data) of a row's checked values: its job and line, so a
    blob copied into another row or job does not decrypt there (and is not trusted)."""
    return f"bulk_row_checked:{job_id}:{line}"


def definition_of(licence_type: LicenceType) -> str:
    """What a row's check depends on in its type: its code, the holder kind and the face's
    specification."""
    text = json.dumps([licence_type.code, licence_type.holder_kind, licence_type.fields], sort_keys=True,
                      ensure_ascii=False)
    return sm3(text.encode()).hex()[:32]


def passed_values(checked: issuing.Checked, request: IssueRequest, definition: str) -> dict[str, Any]:
    """A row's checked values as stored at upload. The dates are the row's own (``None`` when it
    names none): the default start is the day the licence is issued, not the day of the upload."""
    return {"definition": definition, "holder_code": checked.holder_code, "holder_name": checked.holder_name,
            "face": checked.face, "valid_from": request.valid_from and request.valid_from.isoformat(),
            "valid_until": request.valid_until and request.valid_until.isoformat()}


def seal_passed(deps: Deps, job_id: str, line: int, passed: dict[str, Any]) -> str:
    """``passed`` encrypted for the row ``line`` of job ``job_id`` (:func:`checked_label`)."""
    return deps.cipher.encrypt(checked_label(job_id, line), json.dumps(passed, ensure_ascii=False))


def trusted_passed(deps: Deps, row: Any, definition: str) -> dict[str, Any] | None:
    """The values ``row`` (a bulk row, or a row of its ``job_id``, ``line`` and ``payload``)
    passed its check with, if they can be taken as they are: sealed by the node's AEAD key for
    this job and line (so nobody else wrote them and they were not copied from another row) and
    checked against ``definition``. None for a row of an older upload, of a type
    whose definition changed since, or whose values do not decrypt as this row's (fail closed:
    the row is then checked again in full, :func:`recheck`)."""
    sealed = row.payload.get("checked")
    if not sealed:
        return None
    try:
        passed = json.loads(deps.cipher.decrypt(checked_label(row.job_id, row.line), sealed))
    except (GMError, ValueError):
        log.warning("bulk_row_checked_values_not_trusted", job_id=row.job_id, line=row.line)
        return None
    return passed if passed["definition"] == definition else None


def recheck(session: Session, deps: Deps, issuer: Issuer, licence_type: LicenceType, row: Any,
            definition: str) -> dict[str, Any]:
    """The row checked again in full from its own payload: the values it passes with now.
    :raise Problem: the row no longer passes."""
    item = json.loads(deps.cipher.decrypt("bulk_row", row.payload["enc"]))
    request = row_request(session, licence_type, item)
    return passed_values(issuing.check_request(session, issuer, request), request, definition)


def complete(licence_type: Any, passed: dict[str, Any], day: date) -> issuing.Checked:
    """A row's issuance from the values it passed with, completed for a licence issued on ``day``.
    :raise ValidationFailed: invalid_validity (its own end date is before ``day``)."""
    return issuing.complete(licence_type, passed["holder_code"], passed["holder_name"], passed["face"],
                            _day(passed["valid_from"]), _day(passed["valid_until"]), day=day)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None
