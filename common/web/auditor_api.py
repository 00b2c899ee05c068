"""The auditor APIs of the two Merkle logs (the gateway's audit log, the seal's signature log).

Every view of them needs a token with the auditor's scope and documents the bearer requirement
(:func:`auditor_view`); both serve the same consistency proof between two tree sizes
(:func:`add_consistency_view`), with one query schema (:class:`ConsistencyArgs`) and so one
answer to sizes out of order. Each log keeps its own response schema, wording and store: the
helpers take them as arguments, so each log's OpenAPI document stays what it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy.orm import Session

from common.db import BIGINT_MAX, get_session
from common.web.auth import BEARER, require_token


def auditor_view(blp: Blueprint, scope: str) -> Callable:
    """A view decorator: a token carrying ``scope`` is required (checked first) and the bearer
    requirement is documented. :raise Unauthorized, Forbidden: (``require_token``)."""

    def decorate(view: Callable) -> Callable:
        return require_token(scope)(blp.doc(security=BEARER)(view))

    return decorate


class ConsistencyArgs(Schema):
    """Both logs' consistency-proof query. ``second`` below ``first`` is refused here, from the
    query alone (422 ``validation_failed``, naming ``second``), before any store is asked; sizes
    beyond the tree are the store's to refuse (the log's own 400 range problem)."""

    first = fields.Integer(required=True, validate=validate.Range(min=0, max=BIGINT_MAX))
    second = fields.Integer(validate=validate.Range(min=0, max=BIGINT_MAX),
                            metadata={"description": "default: the latest checkpoint's size"})

    @validates_schema
    def _ordered(self, data, **_kwargs):
        if "second" in data and data["second"] < data["first"]:
            raise ValidationError("second must not be smaller than first", "second")


def add_consistency_view(blp: Blueprint, scope: str, *, response: type[Schema],
                         latest_size: Callable[[Session], int],
                         proof: Callable[[Session, int, int], list[bytes]], doc: str) -> type[MethodView]:
    """``GET <blp>/proof/consistency?first=&second=``: the proof that the tree of size ``second``
    (default: ``latest_size``, the latest checkpoint's) extends the tree of size ``first``.

    ``proof`` is the log's store's, which refuses sizes out of order or beyond the tree with the
    log's own bad-range problem; ``doc`` is the view's docstring (its OpenAPI summary).
    """

    class Consistency(MethodView):
        def get(self, args: dict[str, Any]) -> dict[str, Any]:
            session = get_session()
            second = args["second"] if "second" in args else latest_size(session)
            return {"first": args["first"], "second": second,
                    "proof": [h.hex() for h in proof(session, args["first"], second)]}

    # The docstring is set before the decorators copy it (functools.wraps) and before the
    # blueprint reads it for the OpenAPI document.
    Consistency.get.__doc__ = doc
    Consistency.get = auditor_view(blp, scope)(  # type: ignore[method-assign]
        blp.arguments(ConsistencyArgs, location="query")(blp.response(200, response)(Consistency.get)))
    blp.route("/proof/consistency")(Consistency)
    return Consistency
