"""Reading the log's entries: by index, by range, by leaf hash, and the search index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.errors import NotFound
from seal.log.errors import BadRange
from seal.log.models import LogEntry
from seal.log.tree import log_size

MAX_RANGE = 100


def get_entry(session: Session, index: int) -> LogEntry:
    """:raise NotFound: no entry at that index."""
    entry = session.get(LogEntry, index)
    if entry is None or index >= log_size(session):
        raise NotFound(f"no log entry at index {index}", code="log_entry_not_found")
    return entry


def entries_range(session: Session, start: int, end: int) -> list[LogEntry]:
    """Entries ``[start, end)``, at most :data:`MAX_RANGE`. :raise BadRange: out of bounds."""
    size = log_size(session)
    if not 0 <= start < end <= size:
        raise BadRange(f"range [{start}, {end}) is not within the log [0, {size}) or is empty")
    if end - start > MAX_RANGE:
        raise BadRange(f"at most {MAX_RANGE} entries per request")
    return list(session.scalars(select(LogEntry).where(LogEntry.leaf_index >= start, LogEntry.leaf_index < end)
                                .order_by(LogEntry.leaf_index)))


def find_by_leaf_hash(session: Session, leaf_hash: bytes, size: int) -> LogEntry:
    """The first entry with this leaf hash within the first ``size`` leaves. :raise NotFound:"""
    entry = session.scalars(select(LogEntry).where(LogEntry.leaf_hash == leaf_hash, LogEntry.leaf_index < size)
                            .order_by(LogEntry.leaf_index).limit(1)).first()
    if entry is None:
        raise NotFound(f"no leaf with that hash in the tree of size {size}", code="log_leaf_not_found")
    return entry


@dataclass
class SearchQuery:
    seal_id: str | None = None
    seal_code: str | None = None
    org_code: str | None = None
    signer: str | None = None
    document_digest: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def search_entries(session: Session, query: SearchQuery, *, page: int = 1,
                   per_page: int = 20) -> tuple[list[LogEntry], int]:
    """Entries matching every given criterion, newest first, and the total count.

    This reads the search columns, an index over the log: results are not proven by the search
    itself; each entry's inclusion proof is what an auditor checks.
    """
    conditions = [LogEntry.leaf_index < log_size(session)]
    for name in ("seal_id", "seal_code", "org_code", "signer"):
        value = getattr(query, name)
        if value:
            conditions.append(getattr(LogEntry, name) == value)
    if query.document_digest:
        conditions.append(LogEntry.document_digest == query.document_digest.lower())
    if query.since:
        conditions.append(LogEntry.time >= query.since)
    if query.until:
        conditions.append(LogEntry.time < query.until)
    total = session.scalar(select(func.count()).select_from(LogEntry).where(*conditions)) or 0
    rows = session.scalars(select(LogEntry).where(*conditions).order_by(LogEntry.leaf_index.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return list(rows), int(total)


