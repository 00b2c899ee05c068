"""One error contract: ``application/problem+json`` (RFC 9457) with a stable ``code``.

Domain code raises :class:`Problem` subclasses. This module is plain Python (no Flask, so a
domain module, a CLI or a worker can import it); :mod:`common.web.problems` turns these,
werkzeug's HTTP errors, marshmallow validation errors and anything unexpected into problem
documents on the wire.
"""

from __future__ import annotations

import traceback
from typing import Any

PROBLEM_MIME = "application/problem+json"


def traceback_without_messages(exc: BaseException) -> str:
    """``exc``'s traceback (and its causes' and contexts'), each exception named by its type
    only: where an unexpected error happened is what the operator needs; its message may quote
    a URL's credentials, a key or a row's values and is never logged (docs/ARCHITECTURE.md)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        parts.append(f"Traceback (most recent call last):\n{frames}{type(current).__name__}\n")
        cause = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        if cause is not None:
            parts.append("\nwhich was raised from (or while handling):\n\n")
        current = cause
    return "".join(parts).rstrip("\n")


def problem_type(code: str) -> str:
    return f"urn:xsn:problem:{code}"


class Problem(Exception):
    """A domain error that maps to an HTTP status and a stable machine code.

    Subclasses set ``status``, ``code`` and ``title``; instances carry ``detail`` and any
    extra members (e.g. ``errors`` for field errors).
    """

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, *, code: str | None = None,
                 status: int | None = None, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        if status:
            self.status = status
        if title:
            self.title = title
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body = {
            "type": problem_type(self.code),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        return body


class NotFound(Problem):
    status, code, title = 404, "not_found", "Not found"


class Conflict(Problem):
    status, code, title = 409, "conflict", "Conflict"


class Forbidden(Problem):
    status, code, title = 403, "forbidden", "Forbidden"


class Unauthorized(Problem):
    status, code, title = 401, "unauthorized", "Authentication required"


class ValidationFailed(Problem):
    status, code, title = 422, "validation_failed", "Request validation failed"


class ServiceUnavailable(Problem):
    status, code, title = 503, "service_unavailable", "Service unavailable"
