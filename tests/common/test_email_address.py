"""The one e-mail check identity and the hub share, and its mask (common.values.email, common.crypto.pii)."""

from __future__ import annotations

import pytest

from common.crypto.pii import mask_email
from common.values.codes import InvalidCode
from common.values.email import parse_email


def test_a_plain_address_is_kept_lower_cased():
    assert parse_email("Demo-0001@Example.TEST") == "demo-0001@example.test"
    assert parse_email("a.b+tag@sub.example.test") == "a.b+tag@sub.example.test"


@pytest.mark.parametrize("raw", ["", "no-at-sign", "a@b", "two@@example.test", "a b@example.test",
                                 "x@example.test\r\nBcc: y@example.test", "张三@example.test",
                                 "Name <x@example.test>", "x@-bad-.test", "x" * 65 + "@example.test",
                                 "x@" + "a" * 250 + ".test", None, 7])
def test_anything_else_is_invalid_email(raw):
    with pytest.raises(InvalidCode) as caught:
        parse_email(raw)
    assert caught.value.code == "invalid_email"


def test_the_mask_keeps_the_first_character_and_the_domain():
    assert mask_email("demo-0001@example.test") == "d***@example.test"
