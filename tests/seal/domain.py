"""Actors, a digest and the in-memory log shared by the tests of the seal domain modules."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from common.crypto.gm import sm3
from common.errors import Problem
from seal import grants, signing
from seal.models import Signature
from tests.seal.fakes import InMemoryLog

ORG_CODE = "91110000600037341L"


ORG_NAME = "西安市示范科技有限公司"


DIGEST = sm3("行政许可决定书".encode())


LICENSES = grants.Actor(sub="svc-licenses", client_id="xsn-licenses", scopes=frozenset({"seal:sign"}))


PAYMENT = grants.Actor(sub="svc-payment", client_id="xsn-payment", scopes=frozenset({"seal:sign"}))


STAFF = grants.Actor(sub="person-42", client_id="xsn-web", scopes=frozenset({"seal:sign"}))


LOG = InMemoryLog()  # signing here logs to an in-memory tree; the database log is tested with the API


def sign(*args, **kwargs) -> signing.SignResult:
    return signing.sign(*args, log=LOG, **kwargs)


def expect_problem(code: str, status: int, call, *args, **kwargs) -> Problem:
    with pytest.raises(Problem) as caught:
        call(*args, **kwargs)
    assert (caught.value.code, caught.value.status) == (code, status), caught.value.to_dict()
    return caught.value


def signature_count(db) -> int:
    return db.scalar(select(func.count()).select_from(Signature))
