"""Group commit of ledger transfers: the transfer requests a process is serving at once share one
transaction (the machinery is :mod:`common.group_commit`, shared with the seal node).

Why: a request that commits on its own waits for its own WAL flush and pays for its own
statements, so a server answering one transfer per request is bound by commit latency and by
per-statement overhead (docs/ARCHITECTURE.md, payment, "Measured"). TigerBeetle batches the
transfers that arrive together; this does the same inside one server process: the group is
written with :func:`~payment.ledger.group_write.write_requests` (each request all-or-nothing, a
refusal fails only its own request), committed once, and only then is every waiting request
answered. When the group's transaction fails, each request is retried alone; if a commit's
outcome is unknown (the connection dropped during COMMIT), the retry finds the transfers already
written and answers them as replays (``created: false``) — the same as a client's own retry
with the same ids.

On PostgreSQL a plainly new group is one statement that commits itself (``write_committed``,
:class:`payment.ledger.group_write.OneStatementWriter`), tried before the session path; so one
committer thread: it mostly waits on the database while the next group gathers, and a second
thread only split the groups in two (measured: more CPU per transfer, not more transfers).

:class:`InlineWriter` has the same ``submit`` for a caller that is never concurrent (a sync
gunicorn worker, a CLI): it writes in the caller's thread, one transaction per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import structlog

from common import group_commit
from common.errors import ServiceUnavailable
from common.group_commit import WAIT_SECONDS, CommittedWriter, SessionFactory
from payment.ledger.group_write import write_requests
from payment.ledger.transfers import TransferResult, TransferSpec, create_transfers

log = structlog.get_logger("xsn.payment.ledger")

MAX_GROUP_TRANSFERS = group_commit.MAX_GROUP_ITEMS
COMMITTERS = 1


class LedgerWriter(Protocol):
    def submit(self, specs: Sequence[TransferSpec]) -> list[TransferResult]: ...


class LedgerTimeout(ServiceUnavailable):
    code, title = "ledger_timeout", "The ledger did not answer in time"


class InlineWriter(group_commit.InlineWriter[TransferSpec, list[TransferResult]]):
    """Writes each request in the caller's thread, in its own transaction."""

    def __init__(self, sessions: SessionFactory, write_one=create_transfers,
                 write_committed: CommittedWriter | None = None) -> None:
        super().__init__(sessions, write_one, write_committed)


class GroupCommitter(group_commit.GroupCommitter[TransferSpec, list[TransferResult]]):
    """Coalesces the concurrent ``submit`` calls of one process into shared transactions.

    ``write_group`` and ``write_one`` are the ledger's by default; tests pass their own to
    watch the grouping without a database. ``submit`` raises the request's refusal (as
    ``create_transfers`` raises it), :class:`LedgerTimeout`, or a database error.
    """

    def __init__(self, sessions: SessionFactory, *, write_group=write_requests, write_one=create_transfers,
                 write_committed: CommittedWriter | None = None, committers: int = COMMITTERS,
                 max_transfers: int = MAX_GROUP_TRANSFERS, wait_seconds: float = WAIT_SECONDS) -> None:
        super().__init__(sessions, write_group=write_group, write_one=write_one, timeout=_timeout,
                         write_committed=write_committed, committers=committers, max_items=max_transfers,
                         wait_seconds=wait_seconds,
                         name="ledger-group-commit", logger=log, failed_event="ledger_group_failed")


def _timeout() -> LedgerTimeout:
    return LedgerTimeout("the ledger did not answer in time; retry with the same transfer ids")
