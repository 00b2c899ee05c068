"""Identity's batch people lookup (``POST /identity/api/v1/people/lookup``) as callers reach it:
through the gateway on the suite's real processes, with the headers a caller chooses to send.

The gateway asks for a valid token on ``/api/v1/**``; identity decides the scope
(``identity:people:read``), the masking (``phone:full``, ``email:full``) and the size limit.
"""

from __future__ import annotations

import pytest
import requests

from common import demo_recipients
from tests.support.suite import client_token

pytestmark = pytest.mark.e2e
PATH = "/identity/api/v1/people/lookup"


def _lookup(suite, body: dict, token: str | None = None, **headers: str) -> requests.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(f"{suite.base_url('gateway')}{PATH}", json=body, headers=headers, timeout=30)


def test_the_lookup_answers_contacts_masked_by_scope_and_lists_unknown_subjects(suite):
    first, second = demo_recipients.recipient(0), demo_recipients.recipient(1)
    body = {"subjects": [first.subject, "no-such-subject", second.subject, first.subject]}
    full = client_token(suite, "xsn-messaging", scope="identity:people:read phone:full email:full")["access_token"]
    answer = _lookup(suite, body, full)
    assert answer.status_code == 200, answer.text
    people = answer.json()["people"]
    assert [p["id"] for p in people] == [first.subject, second.subject]  # asked order, each once
    assert (people[0]["mobile"], people[0]["email"]) == (first.mobile, first.email)
    assert answer.json()["unknown"] == ["no-such-subject"]

    masked = client_token(suite, "xsn-messaging", scope="identity:people:read")["access_token"]
    contact = _lookup(suite, body, masked).json()["people"][0]
    assert contact["mobile"] != first.mobile and contact["mobile"][-4:] == first.mobile[-4:]
    assert contact["email"] != first.email and contact["email"].endswith("@example.test")


def test_the_lookup_is_refused_without_a_token_or_its_scope_whatever_the_caller_claims(suite):
    body = {"subjects": [demo_recipients.recipient(0).subject]}
    forged = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "identity", "X-Client-Id": "xsn-messaging"}
    anonymous = _lookup(suite, body, **forged)
    assert anonymous.status_code == 401
    assert anonymous.headers["Content-Type"].startswith("application/problem+json")
    sender = client_token(suite, "xsn-demo-sender", scope="messaging:send")["access_token"]
    refused = _lookup(suite, body, sender, **forged)
    assert refused.status_code in (401, 403), refused.text  # identity's audience or scope, never the contacts
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert demo_recipients.recipient(0).mobile not in refused.text


def test_an_oversized_or_empty_lookup_is_refused_with_a_stable_code(suite):
    token = client_token(suite, "xsn-messaging", scope="identity:people:read")["access_token"]
    too_many = _lookup(suite, {"subjects": [r.subject for r in demo_recipients.recipients()[:501]]}, token)
    assert too_many.status_code == 413, too_many.text
    assert too_many.headers["Content-Type"].startswith("application/problem+json")
    assert too_many.json()["code"] == "too_many_subjects"
    empty = _lookup(suite, {"subjects": []}, token)
    assert empty.status_code == 422 and empty.json()["code"] == "validation_failed"
