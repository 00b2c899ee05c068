"""The record of auditor queries (``audit_queries``): the seal node's store for the audit hook.

Every request to the auditor API and every auditor-console view is written here through
:func:`common.web.audit.audit_requests`, each in its own transaction, so a refused or failed
request is recorded too; if the record cannot be written, the request fails.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seal.log.models import AuditQuery

if TYPE_CHECKING:  # the hook's types only: this module stays free of the web layer
    from common.db import Database
    from common.web.audit import AuditRecord


class AuditQueryStore:
    """Writes audit records as ``audit_queries`` rows (the ``common.web.audit.AuditStore`` interface)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def write(self, record: AuditRecord) -> None:
        with self.database.session() as session:
            session.add(query_row(record))
            session.commit()


def query_row(record: AuditRecord) -> AuditQuery:
    query = {"path": record.resource, "args": record.parameters}
    return AuditQuery(time=record.time, subject=record.subject, client_id=record.client_id,
                      action=record.event_type, query=json.dumps(query, sort_keys=True, ensure_ascii=False),
                      status=record.status, outcome=record.outcome, request_id=record.request_id)


def list_queries(session: Session, *, page: int, per_page: int) -> tuple[list[AuditQuery], int]:
    total = session.scalar(select(func.count()).select_from(AuditQuery)) or 0
    rows = session.scalars(select(AuditQuery).order_by(AuditQuery.id.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return list(rows), int(total)
