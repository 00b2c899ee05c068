"""The one audit hook: who looked at what, when, and how it went (GB/T 22239 level 3 records).

A service hangs :func:`audit_requests` on a blueprint; after each request of that blueprint,
refused ones included, it builds an :class:`AuditRecord` (date/time, user, event type, outcome,
request id, the resource and its parameters) and hands it to the service's :class:`AuditStore`.
The store is the service's own (seal writes its ``audit_queries`` table; the gateway and the
licences node bring theirs). A store that cannot write raises, and the request then fails:
audit never drops a record silently (STYLE.md, explicit failure policy).

Who is asking comes from verified values only: by default the claims :func:`common.web.auth.require_token`
put on ``g`` (``subject``, ``client_id``); a console passes its own ``caller`` (its verified
session claims). Headers a client could set are never read here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from flask import Blueprint, Flask, Response, g, request

SUCCESS, DENIED, FAILURE = "success", "denied", "failure"


def outcome_of(status: int) -> str:
    """``success`` below 400, ``denied`` for 401 and 403, ``failure`` for every other error."""
    if status < 400:
        return SUCCESS
    return DENIED if status in (401, 403) else FAILURE


@dataclass(frozen=True)
class AuditRecord:
    event_type: str  # what was done, e.g. "EntryProof" or "console.index"
    subject: str | None  # who: the token's or the console session's subject
    client_id: str | None  # through which client
    status: int
    outcome: str  # success | denied | failure
    request_id: str | None
    resource: str = ""  # the path asked for
    parameters: dict[str, Any] = field(default_factory=dict)  # its query parameters
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


class AuditStore(Protocol):
    def write(self, record: AuditRecord) -> None:
        """Store the record durably (its own transaction) or raise: the request then fails."""


Caller = Callable[[], tuple[str | None, str | None]]


def verified_caller() -> tuple[str | None, str | None]:
    """(subject, client id) of the access token verified for this request, if any."""
    return g.get("subject"), g.get("client_id")


def record_for(event_type: str, status: int, caller: Caller = verified_caller) -> AuditRecord:
    """The record of the current request (call inside a request context)."""
    subject, client_id = caller()
    return AuditRecord(event_type=event_type, subject=subject, client_id=client_id, status=status,
                       outcome=outcome_of(status), request_id=g.get("request_id"), resource=request.path,
                       parameters=request.args.to_dict(flat=True))


def _endpoint_name() -> str | None:
    return (request.endpoint or "").rpartition(".")[2] or None


def audit_requests(target: Blueprint | Flask, store: Callable[[], AuditStore], *,
                   event_type: Callable[[], str | None] = _endpoint_name, caller: Caller = verified_caller) -> None:
    """Record every request of ``target`` in the store that ``store()`` returns.

    ``event_type`` names the event of the current request (default: the view's name); ``None``
    means this request is not audited (e.g. a console's static or sign-in views).
    """

    @target.after_request
    def _audit(response: Response) -> Response:
        name = event_type()
        if name is not None:
            store().write(record_for(name, response.status_code, caller))
        return response
