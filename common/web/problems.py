"""Problem documents on the wire: the Flask handlers and the OpenAPI error schema.

The error hierarchy itself is :mod:`common.errors` (Flask-free); here every failure a service
can meet (a :class:`~common.errors.Problem`, werkzeug's HTTP errors, marshmallow validation
errors, anything unexpected) leaves as ``application/problem+json``. A client never sees an
HTML page or a stack trace.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import marshmallow as ma
import structlog
from flask import Flask, Response, g, json
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException

from common.errors import PROBLEM_MIME, Problem, problem_type, traceback_without_messages

log = structlog.get_logger("xsn.errors")


# werkzeug status -> stable code, for errors raised by routing or the framework itself.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_unavailable",
    503: "service_unavailable",
    504: "upstream_timeout",
}


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    body = dict(body)
    request_id = g.get("request_id") if g else None
    if request_id:
        body.setdefault("request_id", request_id)
    response = Response(json.dumps(body), status=body["status"], mimetype=PROBLEM_MIME)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _flatten_messages(messages: Any) -> dict[str, Any]:
    """webargs nests errors by location ({"json": {"field": [...]}}); clients want fields."""
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "form", "headers",
                                                           "files", "view_args", "cookies"}:
        flat: dict[str, Any] = {}
        for location_errors in messages.values():
            if isinstance(location_errors, dict):
                flat.update(location_errors)
            else:
                flat.setdefault("_schema", location_errors)
        return flat
    return messages if isinstance(messages, dict) else {"_schema": messages}


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = HTTP_CODES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
    title = HTTPStatus(status).phrase
    detail = exc.description or title
    body: dict[str, Any] = {"type": problem_type(code), "title": title, "status": status,
                            "detail": detail, "code": code}
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if messages:
        errors = _flatten_messages(messages)
        if status == 400 and "Invalid JSON body" in json.dumps(errors):
            body.update(code="malformed_json", type=problem_type("malformed_json"),
                        detail="The request body is not valid JSON.")
        else:
            body["errors"] = errors
            if status == 422:
                body["detail"] = "One or more fields are invalid."
    if isinstance(data, dict) and data.get("code"):
        body.update(code=data["code"], type=problem_type(data["code"]))
    headers = {}
    valid_methods = getattr(exc, "valid_methods", None)
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(valid_methods)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(retry_after)
    return problem_response(body, headers)


def handle_problem(exc: Problem) -> Response:
    if exc.status >= 500:
        log.error("problem", code=exc.code, detail=exc.detail)
    headers = {}
    if exc.extra.get("retry_after"):
        headers["Retry-After"] = str(int(exc.extra["retry_after"]))
    if exc.status == 401:
        # RFC 6750 §3: tell a client which scheme and why, without the detail text.
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    elif exc.status == 403 and exc.code == "insufficient_scope":
        headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope"'
    return problem_response(exc.to_dict(), headers)


def handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    # Where it happened, each exception named by its type: never the message (docs/ARCHITECTURE.md).
    log.error("unhandled_exception", error_type=type(exc).__name__, traceback=traceback_without_messages(exc))
    return problem_response({
        "type": problem_type("internal_error"),
        "title": "Internal Server Error",
        "status": 500,
        "detail": "An unexpected error occurred; quote the request id when reporting it.",
        "code": "internal_error",
    })


def init_app(app: Flask) -> None:
    # Registered after flask-smorest's Api so these handlers replace its JSON ones.
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Problem, handle_problem)
    app.register_error_handler(Exception, handle_unexpected)


class ProblemSchema(ma.Schema):
    """The error body every service sends, for the OpenAPI documents (RFC 9457 plus ``code``)."""

    class Meta:
        unknown = ma.INCLUDE  # RFC 9457 extension members (e.g. a domain error's own fields)

    type = ma.fields.String(required=True, metadata={"description": "urn:xsn:problem:<code>"})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True)
    code = ma.fields.String(required=True, metadata={"description": "stable machine-readable error code"})
    request_id = ma.fields.String(metadata={"description": "quote it when reporting a problem"})
    errors = ma.fields.Dict(metadata={"description": "field errors of a rejected request: field -> messages"})


class ProblemApi(Api):
    """flask-smorest's ``Api``, documenting error responses as they are sent.

    flask-smorest documents its own error format (``code``/``status``/``message``) as
    ``application/json``; our handlers replace it with problem documents, so the shared
    error responses are registered here with :class:`ProblemSchema` and ``application/problem+json``.
    """

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIME)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response (a problem document)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIME)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

