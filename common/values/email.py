"""E-mail addresses as identity stores them and the hub sends to them: one check for both."""

from __future__ import annotations

import re

from common.values.codes import InvalidCode

# Deliberately narrow: one address, no display name, no spaces or line breaks (header injection),
# ASCII only. A library (email-validator) would accept more than an SMTP header built from it should.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
MAX_LENGTH = 254  # RFC 5321 path limit


def parse_email(raw: object) -> str:
    """The address, lower-cased.

    :raise InvalidCode: ``invalid_email`` (not a string, too long, or not one plain address).
    """
    if not isinstance(raw, str) or len(raw) > MAX_LENGTH or not _EMAIL.match(raw):
        raise InvalidCode("invalid_email", "not an e-mail address")
    return raw.lower()
