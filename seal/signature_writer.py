"""Writing signatures and their log entries: in the signer's own transaction, or grouped.

Flask-free. A signature is written as its log entry (the log append, which takes the log
head's row lock) and its ``signatures`` row carrying the entry's index, then committed. On
PostgreSQL the head lock is held from the append through the commit's WAL flush, so signers
that each commit alone queue on it one flush at a time (docs/ARCHITECTURE.md, seal, ~3.9
backends waiting on average). :func:`group_writer` lets the concurrent signing requests of one
server process share that work (``common.group_commit``): one committer thread per process takes
every signature queued behind it, appends them to the log in one go (one head update, one
``INSERT ... unnest`` each of entries, nodes and signatures: ``RowsInsert``) and commits once; each request is
answered only after the commit that holds its signature and entry.

One committer per process, not several: every group takes the same head lock, so a second
committer of the same process would only split the queue and wait on the lock itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy.orm import Session

from common.errors import ServiceUnavailable
from common.group_commit import GroupCommitter, SessionFactory
from common.merkle_log.driver import RowsInsert, pipelined
from seal.models import Signature

log = structlog.get_logger("xsn.seal.signing")

_INSERT_SIGNATURE = RowsInsert(Signature.__table__)
MAX_GROUP_SIGNATURES = 500  # one group's statements stay well inside PostgreSQL's 65,535 parameters


@dataclass
class PendingSignature:
    """A signature made but not yet written: its ``signatures`` row (``log_index`` filled in by
    the write; it carries the DER, stored there once) and its log event."""

    row: dict[str, Any]
    event: dict[str, Any]


class SignatureLog(Protocol):
    """Where every signature is logged, inside the writer's transaction. The log gets each
    signature's event, which commits to its DER through ``signature_digest``; the DER itself is
    stored once, in the ``signatures`` row, where the log's entry reads it."""

    def append_events(self, session: Session, events: Sequence[dict[str, Any]]) -> list[int]:
        """Append the events in order; their leaf indexes."""


class SignatureWriter(Protocol):
    def submit(self, items: Sequence[PendingSignature]) -> list[int]:
        """Write and commit ``items`` (all or none); their log indexes.

        :raise IntegrityError: a constraint refused them (an idempotency key taken meanwhile).
        :raise SignatureWriterTimeout:
        """


class SignatureWriterTimeout(ServiceUnavailable):
    code, title = "signing_timeout", "The signature could not be written in time"


def write_signatures(session: Session, signature_log: SignatureLog, items: Sequence[PendingSignature], *,
                     commit: bool = False) -> list[int]:
    """Append the items' events to the log, then insert their rows with the entries' indexes, in
    the caller's transaction (the caller commits, or with ``commit`` this does). Their log
    indexes, in order.

    On PostgreSQL the head's advance goes with the read of the nodes the append needs (one round
    trip), and the log's inserts, these and (``commit``) the ``COMMIT`` in a second one: the log
    head's lock is held for those two exchanges and the commit's flush.
    :raise IntegrityError: a row breaks a constraint (nothing of the transaction may be kept).
    """
    with pipelined(session, commit=commit):
        indexes = signature_log.append_events(session, [item.event for item in items])
        for item, index in zip(items, indexes, strict=True):
            item.row["log_index"] = index
        _INSERT_SIGNATURE.execute_many(session, [item.row for item in items])
    return indexes


def group_writer(sessions: SessionFactory, signature_log: SignatureLog) -> GroupCommitter:
    """The process's grouped writer (its ``submit`` is :meth:`SignatureWriter.submit`)."""

    def write_one(session: Session, items: Sequence[PendingSignature]) -> list[int]:
        return write_signatures(session, signature_log, items)

    def write_group(session: Session, requests: Sequence[Sequence[PendingSignature]]) -> list[list[int]]:
        # The COMMIT goes with the inserts: the group's session has nothing left to commit.
        indexes = iter(write_signatures(session, signature_log, [item for items in requests for item in items],
                                        commit=True))
        return [[next(indexes) for _ in items] for items in requests]

    return GroupCommitter(sessions, write_group=write_group, write_one=write_one, timeout=_timeout, committers=1,
                          max_items=MAX_GROUP_SIGNATURES, name="seal-group-commit", logger=log,
                          failed_event="signature_group_failed")


def _timeout() -> SignatureWriterTimeout:
    return SignatureWriterTimeout("the signature was not written in time; retry with the same Idempotency-Key")
