"""Errors shared by identity's account and organisation rules (plain Python)."""

from __future__ import annotations

from common.errors import ValidationFailed


class InvalidInput(ValidationFailed):
    """Field errors: ``errors = {field: [message]}``, messages are stable codes."""

    def __init__(self, errors: dict[str, list[str]], detail: str = "One or more fields are invalid.") -> None:
        super().__init__(detail, errors=errors)
        self.errors = errors
