"""Request-argument parsing for every flask-smorest blueprint: one schema instance per route.

``@blp.arguments(SomeSchema)`` hands the class to webargs, which instantiates it on every
request (``Parser._get_schema``); building a marshmallow schema copies its declared fields and
cost 20–36 µs a request on the services' argument schemas (issue 9, second reading; 41 routes
passed a class). :class:`SchemaOnceParser` instantiates the class once, when the route is
decorated, which is what passing ``SomeSchema()`` does by hand; marshmallow schemas keep no
per-call state, so one instance serves every request and thread (flask-smorest shares its
response schemas the same way). The OpenAPI documents are built from what the decorator was
given (the class), so they do not change.

flask-smorest reads its parser from ``Blueprint.ARGUMENTS_PARSER`` when a route is decorated,
that is when a service's API module is imported; every such module imports ``common.web``
first (tokens, problems), whose ``__init__`` calls :func:`install`. A blueprint decorated
without it would only be slower, never different.

:func:`arguments_or` puts a fast path in front of ``blueprint.arguments(schema)`` for a hot
route whose plain body a few lines can recognise; :func:`documented_by` keeps flask-smorest's
documentation of a hot view that renders its own answer, without the wrappers.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint
from webargs.core import parse_json
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import ClientDisconnected

from common.errors import ValidationFailed
from common.web.context import current_request

NUL_REFUSED = "must not contain the NUL character"


class SchemaOnceParser(FlaskParser):
    def use_args(self, argmap: Any, *args: Any, **kwargs: Any):
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            argmap = argmap()  # once per route; webargs would build one per request
        return super().use_args(argmap, *args, **kwargs)

    def _process_location_data(self, location_data: Any, schema: ma.Schema, req: Any, location: str,
                               unknown: str | None, validators: Any) -> Any:
        """As webargs, and no loaded text may carry a NUL character (422, with the fields that do):
        PostgreSQL cannot store one (psycopg refuses the statement, a 500), SQLite would, so the
        two backends would answer the same request differently; no field here means one."""
        data = super()._process_location_data(location_data, schema, req, location, unknown, validators)
        carrying = [name for name, value in data.items() if _has_nul(name) or _has_nul(value)] \
            if isinstance(data, dict) else ([] if not _has_nul(data) else ["_schema"])
        if carrying:
            raise ma.ValidationError({name: [NUL_REFUSED] for name in carrying})
        return data

    def load_json(self, req: Any, schema: ma.Schema) -> Any:
        """As webargs, and a body Python's ``json`` refuses otherwise than by a syntax error is
        malformed too (400), not a 500: an integer of more than 4,300 digits (``ValueError``),
        nesting deeper than the interpreter's recursion limit (``RecursionError``)."""
        try:
            return super().load_json(req, schema)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError was handled above
            return self._handle_invalid_json_error(exc, req)


def _has_nul(value: Any) -> bool:
    """Whether a loaded value, or any text inside it (keys too), contains U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_nul(item) for item in value)
    return False


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def refuse_nul_in_query_and_form() -> None:
    """Before every request (``create_app``): what a view reads itself, not through the parser
    (pages read ``request.args`` and ``request.form``), carries no NUL either: 422 as the parser
    answers, never PostgreSQL's refusal (a 500). The query is looked at as sent (one substring
    test: a NUL reaches it only as ``%00``); a form only when the request is one."""
    req = current_request()
    environ = req.environ
    if "%00" in environ.get("QUERY_STRING", ""):
        _refuse_nul(req.args)
    content_type = environ.get("CONTENT_TYPE", "")
    if content_type.startswith(_FORMS):
        if content_type.startswith(_FORMS[0]):
            # Kept: a view may still read the body as sent (a payment notification's signature
            # covers it), and werkzeug parses the form from the kept bytes instead of the stream.
            req.get_data()
        _refuse_nul(req.form)


def _refuse_nul(values: Any) -> None:
    carrying = [name for name, value in values.items(multi=True) if _has_nul(name) or _has_nul(value)]
    if carrying:
        raise ValidationFailed("a NUL character is not accepted", errors={
            name.replace("\x00", "\\x00"): [NUL_REFUSED] for name in carrying})


def _json_body() -> Any:
    """The request's JSON body as webargs would read it (its media-type test and its parser, so
    a body the fast path takes is one webargs would read the same), or None."""
    req = current_request()
    environ = req.environ
    # is_json_request(req) parses the Content-Type header (~8 k instructions); the usual one is
    # this exact text, which that test accepts.
    if environ.get("CONTENT_TYPE") != "application/json" and not is_json_request(req):
        return None
    try:
        return parse_json(_body(req, environ))
    except (ValueError, RecursionError):  # malformed: webargs answers it on the schema's path
        return None


def _body(req: Any, environ: dict[str, Any]) -> bytes:
    """``req.get_data(cache=True)``: the same bytes, the same 413 and client-disconnect errors.

    A body of a plain ``Content-Length`` within the app's limit is read off ``wsgi.input`` in one
    call and handed back to the request as its ``stream`` (werkzeug's documented way to set a
    cached property), so a later ``get_data`` (webargs, when the fast path declines) reads the
    same bytes. Why: under gunicorn ``get_data`` reads through werkzeug's ``LimitedStream``
    bounded by ``MAX_CONTENT_LENGTH`` in 64 KiB steps until the body is exhausted, two reads of
    gunicorn's body and two 64 KiB buffers for a 24-byte body: ~98 k instructions of a licences
    verification's ~1,000 k, against ~25 k here (callgrind; docs/ARCHITECTURE.md, licences,
    "What only a verification pays"). Anything else (chunked, no or an odd length, over the
    limit, a stream werkzeug made already) goes through ``get_data`` as before."""
    length = environ.get("CONTENT_LENGTH")
    if (not length or not length.isdigit() or not length.isascii() or "HTTP_TRANSFER_ENCODING" in environ
            or "stream" in vars(req)):
        return req.get_data(cache=True)
    size, limit = int(length), req.max_content_length
    if limit is not None and size > limit:
        return req.get_data(cache=True)  # RequestEntityTooLarge, as werkzeug raises it
    stream = environ["wsgi.input"]
    data = stream.read(size)
    while len(data) < size:  # a stream may return less than asked before its end
        more = stream.read(size - len(data))
        if not more:
            # werkzeug's LimitedStream: a body shorter than its Content-Length is a disconnect,
            # unless the server terminates the stream itself (then it reads what there was)
            if "wsgi.input_terminated" not in environ:
                raise ClientDisconnected()
            break
        data += more
    req.stream = io.BytesIO(data)
    return data


def install() -> None:
    """Make every flask-smorest blueprint parse with :class:`SchemaOnceParser` (idempotent)."""
    if not isinstance(Blueprint.ARGUMENTS_PARSER, SchemaOnceParser):
        Blueprint.ARGUMENTS_PARSER = SchemaOnceParser()


def arguments_or(blueprint: Blueprint, schema: type[ma.Schema] | ma.Schema,
                 fast: Callable[[Any], dict | None]):
    """``blueprint.arguments(schema)`` (the same OpenAPI document, the same errors) with a fast
    path: ``fast(body)`` gets the request's JSON body read exactly as webargs reads it (None when
    the request is not JSON or its body is malformed), and what it returns is passed to the view
    as it is; for anything else (``None``) webargs parses the request against ``schema``. ``fast``
    must return only what ``schema`` would load unchanged. On a hot path webargs and marshmallow
    cost more than the request's own parsing."""

    def decorator(view):
        parsed = blueprint.arguments(schema)(view)

        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            body = fast(_json_body())
            return parsed(*args, **kwargs) if body is None else view(*args, body, **kwargs)

        wrapper._apidoc = parsed._apidoc
        return wrapper

    return decorator


def documented_by(*decorators: Callable):
    """The view as it is, carrying the OpenAPI documentation ``decorators`` (flask-smorest's
    ``blp.response``, ``blp.doc``, applied as if stacked in this order) give it.

    For a view that always returns a finished ``Response``: ``blp.response`` passes one through
    untouched and ``blp.doc`` only calls the view, but each wrapper still costs a call, an
    ``ensure_sync`` and a ``current_app`` look-up per request (licences' ``/verify``: 29 k
    instructions). The OpenAPI document is the same, being built from ``_apidoc`` alone.

    Only documenting decorators belong here (``response``, ``alt_response``, ``doc``): what
    ``arguments``, ``etag`` or ``paginate`` do at request time would be dropped, so they are
    refused; and a view that returned data instead of a ``Response`` would not be dumped.

    :raise ValueError: no decorator, or one that acts at request time, was given.
    """

    if not decorators:
        raise ValueError("documented_by needs the decorators that document the view")

    def decorator(view):
        decorated = view
        for document in reversed(decorators):
            decorated = document(decorated)
        acting = {"arguments", "etag", "pagination"} & set(getattr(decorated, "_apidoc", {}))
        if acting:
            raise ValueError(f"documented_by takes documentation only, not {', '.join(sorted(acting))}")
        view._apidoc = decorated._apidoc
        return view

    return decorator
