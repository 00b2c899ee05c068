"""Retention: archive old records to an evidence bundle, then (and only then) prune them.

GB/T 22239 level 3 asks for at least six months of audit records; older ones may leave the
database only inside an archive: :func:`archive` writes the records older than the cut-off as a
bundle (checkpoint and range proof, verifiable offline like any export), fsyncs it and records
the file's SM3; :func:`prune` deletes records only below the end of contiguous archives whose
files are still there with that SM3, and refuses otherwise. The tree's nodes stay: the log keeps
growing, old checkpoints keep verifying, and the pruned leaves' hashes remain as level-0 nodes.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from common.crypto.gm import sm3
from common.errors import Conflict
from gateway.audit import evidence, log
from gateway.audit.models import HEAD_ID, AuditArchive, AuditHead, AuditRecord


class NotArchived(Conflict):
    code, title = "audit_not_archived", "Records not archived"


def retained_from(session: Session, before: datetime) -> int:
    """The first leaf index to keep: the oldest record at or after ``before`` (or the log size)."""
    first = session.scalar(select(func.min(AuditRecord.leaf_index)).where(AuditRecord.time >= before))
    return log.log_size(session) if first is None else int(first)


def archived_reach(session: Session) -> int:
    """End of the contiguous archived prefix ``[0, reach)``."""
    reach = 0
    for start, end in session.execute(select(AuditArchive.start, AuditArchive.end).order_by(AuditArchive.start)):
        if start <= reach:
            reach = max(reach, end)
    return reach


def archive(session: Session, *, kek: bytes, origin: str, directory: Path, before: datetime) -> AuditArchive | None:
    """Write the not yet archived records older than ``before`` to a bundle file; commits.

    Returns the archive row, or ``None`` when there is nothing new to archive.
    """
    start, end = archived_reach(session), retained_from(session, before)
    if end <= start:
        return None
    bundle = evidence.export(session, kek=kek, origin=origin, start=start, end=end)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"audit-{start:012d}-{end:012d}.json"
    data = (json.dumps(bundle, ensure_ascii=False, indent=1) + "\n").encode()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    row = AuditArchive(start=start, end=end, tree_size=bundle["tree_size"], path=str(path.resolve()),
                       file_sm3=sm3(data).hex())
    session.add(row)
    session.commit()
    return row


def _check_archive_files(session: Session, below: int) -> None:
    for row in session.scalars(select(AuditArchive).where(AuditArchive.start < below)):
        try:
            digest = sm3(Path(row.path).read_bytes()).hex()
        except OSError:
            raise NotArchived(f"the archive {row.path} of records [{row.start}, {row.end}) cannot be read") from None
        if digest != row.file_sm3:
            raise NotArchived(f"the archive {row.path} of records [{row.start}, {row.end}) has changed")


def prune(session: Session, *, before: datetime) -> int:
    """Delete archived records older than ``before``; returns how many; commits.

    :raise NotArchived: a record older than ``before`` is not in an intact archive (nothing deleted).
    """
    pruned, end = log.pruned_below(session), retained_from(session, before)
    if end <= pruned:
        return 0
    reach = archived_reach(session)
    if reach < end:
        raise NotArchived(f"records [{max(pruned, reach)}, {end}) are older than the retention period but not "
                          "archived: run `xsn audit archive` first")
    _check_archive_files(session, end)
    head = AuditHead.__table__
    session.execute(update(head).where(head.c.id == HEAD_ID).values(pruned_below=end))
    deleted = session.execute(delete(AuditRecord).where(AuditRecord.leaf_index < end)).rowcount
    session.commit()
    return int(deleted or 0)
