"""Exceptions raised by :mod:`common.crypto.gm`.

Every exception carries a stable machine ``code`` so services can map it to a
problem+json response without parsing messages.
"""

from __future__ import annotations


class GMError(Exception):
    """Base class for every failure reported by :mod:`common.crypto.gm`."""

    default_code = "gm_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.default_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidSignature(GMError):
    """A signature is malformed, out of range, or does not verify."""

    default_code = "sm2_invalid_signature"


class InvalidKey(GMError):
    """A key is malformed, on the wrong curve, or otherwise unusable."""

    default_code = "gm_invalid_key"
