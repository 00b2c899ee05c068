"""common.web.idempotency: the Idempotency-Key header, documented and read one way for every service."""

import pytest
from flask import Flask

from common.errors import ValidationFailed
from common.web import idempotency


def test_the_openapi_parameter():
    assert idempotency.parameter() == {"in": "header", "name": "Idempotency-Key", "required": False,
                                       "schema": {"type": "string", "maxLength": 255}}
    assert idempotency.parameter(required=True)["required"] is True


@pytest.mark.parametrize(("headers", "required", "expected"), [
    ({}, False, None),
    ({"Idempotency-Key": "k-1"}, False, "k-1"),
    ({"Idempotency-Key": "k-1"}, True, "k-1"),
    ({"Idempotency-Key": "k" * 255}, True, "k" * 255),
])
def test_the_header_is_read(headers, required, expected):
    with Flask(__name__).test_request_context("/", headers=headers):
        assert idempotency.idempotency_key(required=required) == expected


@pytest.mark.parametrize(("headers", "required", "code"), [
    ({"Idempotency-Key": ""}, False, "invalid_idempotency_key"),
    ({"Idempotency-Key": "k" * 256}, False, "invalid_idempotency_key"),
    ({}, True, "idempotency_key_required"),
    ({"Idempotency-Key": ""}, True, "invalid_idempotency_key"),
])
def test_the_header_is_refused_with_a_stable_code(headers, required, code):
    with Flask(__name__).test_request_context("/", headers=headers), pytest.raises(ValidationFailed) as refused:
        idempotency.idempotency_key(required=required)
    assert (refused.value.code, refused.value.status) == (code, 422)
