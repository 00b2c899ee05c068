"""The ``Idempotency-Key`` request header of a create call: its OpenAPI parameter and its parser.

A client that retries a create sends the same key; the service answers the retry with what the
first call made (licences, payment notices). The header is the services' own convention, so it
is documented and read the same way everywhere.
"""

from __future__ import annotations

from typing import Any

from common.errors import ValidationFailed
from common.web.context import current_request

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


def parameter(*, required: bool = False) -> dict[str, Any]:
    """The header as an OpenAPI parameter: ``blp.doc(parameters=[parameter()])``."""
    return {"in": "header", "name": HEADER, "required": required,
            "schema": {"type": "string", "maxLength": MAX_LENGTH}}


def idempotency_key(*, required: bool = False) -> str | None:
    """The request's key, None when it sent none.

    :raise ValidationFailed: ``invalid_idempotency_key`` (empty or too long),
        ``idempotency_key_required`` (``required`` and none sent).
    """
    key = current_request().headers.get(HEADER)
    if key is not None and not 1 <= len(key) <= MAX_LENGTH:
        raise ValidationFailed(f"{HEADER} is 1-{MAX_LENGTH} characters", code="invalid_idempotency_key")
    if required and not key:
        raise ValidationFailed(f"this request needs an {HEADER} header", code="idempotency_key_required")
    return key
