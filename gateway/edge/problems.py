"""The gateway's own errors: ``common.errors.Problem`` subclasses with stable codes.

Each also says what it means for the audit record's ``outcome``: ``rejected`` (the request
itself was malformed or not allowed by shape), ``denied`` (who was asking, or how often),
``error`` (the gateway or an upstream failed).
"""

from __future__ import annotations

import json

from common.errors import PROBLEM_MIME, Problem


class EdgeProblem(Problem):
    outcome = "rejected"


class BadRequest(EdgeProblem):
    status, code, title = 400, "bad_request", "Bad request"


class MalformedRequest(EdgeProblem):
    status, code, title = 400, "malformed_request", "Malformed HTTP request"


class BadPath(EdgeProblem):
    status, code, title = 400, "bad_path", "Path not accepted"


class PathTraversal(EdgeProblem):
    status, code, title = 400, "path_traversal", "Path traversal refused"


class MultipleAuthorization(EdgeProblem):
    status, code, title = 400, "multiple_authorization", "More than one Authorization header"


class UnknownHost(EdgeProblem):
    status, code, title = 421, "unknown_host", "Misdirected request"


class NoRoute(EdgeProblem):
    status, code, title = 404, "not_found", "Not found"


class MethodNotAllowed(EdgeProblem):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class RequestTimeout(EdgeProblem):
    status, code, title = 408, "request_timeout", "Request timeout"


class PayloadTooLarge(EdgeProblem):
    status, code, title = 413, "payload_too_large", "Payload too large"


class HeadersTooLarge(EdgeProblem):
    status, code, title = 431, "headers_too_large", "Request header fields too large"


class TokenProblem(EdgeProblem):
    """401: RFC 6750 §3.1 ``invalid_token`` (``token_missing``: no error attribute, per §3.1)."""

    outcome = "denied"
    status, code, title = 401, "invalid_token", "Invalid access token"


class ScopeProblem(EdgeProblem):
    outcome = "denied"
    status, code, title = 403, "insufficient_scope", "Insufficient scope"


class CorsRefused(EdgeProblem):
    outcome = "denied"
    status, code, title = 403, "cors_refused", "Cross-origin request not allowed"


class RateLimited(EdgeProblem):
    outcome = "denied"
    status, code, title = 429, "rate_limited", "Too many requests"


class UpstreamUnavailable(EdgeProblem):
    outcome = "error"
    status, code, title = 502, "upstream_unavailable", "Upstream service unavailable"


class CircuitOpen(EdgeProblem):
    outcome = "error"
    status, code, title = 503, "upstream_circuit_open", "Upstream service unavailable"


class AuditUnavailable(EdgeProblem):
    outcome = "error"
    status, code, title = 503, "audit_unavailable", "Audit log unavailable"


class Overloaded(EdgeProblem):
    outcome = "error"
    status, code, title = 503, "overloaded", "Too many connections"


class UpstreamTimeout(EdgeProblem):
    outcome = "error"
    status, code, title = 504, "upstream_timeout", "Upstream service timed out"


class InternalError(EdgeProblem):
    outcome = "error"
    status, code, title = 500, "internal_error", "Internal Server Error"


def outcome_of(problem: Problem) -> str:
    return getattr(problem, "outcome", "error" if problem.status >= 500 else "rejected")


def problem_body(problem: Problem, request_id: str | None) -> bytes:
    body = problem.to_dict()
    body.pop("headers", None)  # extra response headers, not members of the document
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def problem_headers(problem: Problem) -> dict[str, str]:
    headers = {"Content-Type": PROBLEM_MIME, "Cache-Control": "no-store"}
    if problem.status == 401:
        # RFC 6750 §3.1: a request without credentials gets no error attribute.
        if problem.code == "token_missing":
            headers["WWW-Authenticate"] = 'Bearer realm="xsn"'
        else:
            headers["WWW-Authenticate"] = (f'Bearer realm="xsn", error="invalid_token", '
                                           f'error_description="{problem.code}"')
    elif problem.status == 403 and problem.code == "insufficient_scope":
        scopes = " ".join(problem.extra.get("required_scopes") or ())
        headers["WWW-Authenticate"] = f'Bearer realm="xsn", error="insufficient_scope", scope="{scopes}"'
    for name, value in (problem.extra.get("headers") or {}).items():
        headers[name] = value
    return headers
