"""Binary values that arrive as base64 in JSON (documents, pictures, signatures), size-limited."""

from __future__ import annotations

import base64

from common.errors import Problem, ValidationFailed


class DocumentTooLarge(Problem):
    status, code, title = 413, "document_too_large", "Document too large"


def decode_base64(value: str, field_name: str, *, limit: int) -> bytes:
    """:raise ValidationFailed: not base64. :raise DocumentTooLarge: over ``limit`` bytes."""
    try:
        data = base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(f"{field_name} is not base64", code="invalid_base64",
                               errors={field_name: ["not base64"]}) from exc
    if len(data) > limit:
        raise DocumentTooLarge(f"{field_name} is {len(data)} bytes; the limit is {limit}", limit=limit)
    return data
