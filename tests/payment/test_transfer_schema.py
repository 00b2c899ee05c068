"""The ledger's fast load of ``POST /ledger/transfers`` bodies gives marshmallow's own answer:
the same loaded data for a valid body, the same refusal (messages) for an invalid one."""

from __future__ import annotations

import copy

import pytest
from marshmallow import Schema, ValidationError

from common.db import BIGINT_MAX
from payment.ledger.transfers import MAX_ID
from payment.schemas import TransferBatchSchema, _plain_transfer_batch

PLAIN = {"id": "t-1", "debit_account_id": "a", "credit_account_id": "b", "amount": 5, "code": "adjustment"}


def _marshmallow(body):
    """marshmallow's own load (the override skipped): the data, or the error messages."""
    try:
        return Schema.load(TransferBatchSchema(), body)
    except ValidationError as error:
        return ("refused", error.messages)


def _ours(body):
    try:
        return TransferBatchSchema().load(body)
    except ValidationError as error:
        return ("refused", error.messages)


def _with(**changes):
    transfer = dict(PLAIN, **changes)
    return {"transfers": [{k: v for k, v in transfer.items() if v is not _DROP}]}


_DROP = object()

VALID = [
    {"transfers": [PLAIN]},
    _with(kind="pending"), _with(kind="single", reference="r" * 64), _with(pending_id="p" * MAX_ID),
    _with(id="i" * MAX_ID, debit_account_id="d" * 128, credit_account_id="c" * 128, amount=BIGINT_MAX),
    _with(id="中文"), _with(amount=1),
    {"transfers": [PLAIN] * 1000},
    {"transfers": [PLAIN, dict(PLAIN, id="t-2", kind="post", pending_id="t-1")]},
]

INVALID = [
    None, [], "x", {}, {"transfers": []}, {"transfers": None}, {"transfers": {}}, {"transfers": [PLAIN] * 1001},
    {"transfers": [PLAIN], "extra": 1}, {"transfers": [None]}, {"transfers": ["x"]}, {"transfers": [[]]},
    _with(id=""), _with(id="i" * (MAX_ID + 1)), _with(id=5), _with(id=None), _with(id=_DROP),
    _with(debit_account_id=""), _with(debit_account_id="d" * 129), _with(credit_account_id=_DROP),
    _with(credit_account_id="c" * 129), _with(amount=0), _with(amount=-1), _with(amount=BIGINT_MAX + 1),
    _with(amount=1.0), _with(amount=1.5), _with(amount="5"), _with(amount=True), _with(amount=None),
    _with(amount=_DROP), _with(code="nope"), _with(code=None), _with(code=_DROP), _with(code=1),
    _with(kind="other"), _with(kind=None), _with(kind=""), _with(pending_id=""), _with(pending_id=None),
    _with(pending_id="p" * (MAX_ID + 1)), _with(reference=""), _with(reference="r" * 65), _with(reference=None),
    _with(reference=7), _with(unknown="x"), _with(batch_id="b"),
    {"transfers": [PLAIN, dict(PLAIN, amount=0)]},
]


@pytest.mark.parametrize("body", VALID)
def test_a_valid_body_loads_as_marshmallow_loads_it_on_the_fast_path(body):
    assert _plain_transfer_batch(copy.deepcopy(body)) is not None  # really the fast path
    assert _ours(copy.deepcopy(body)) == _marshmallow(copy.deepcopy(body))


@pytest.mark.parametrize("body", INVALID)
def test_an_invalid_body_gets_marshmallows_own_refusal(body):
    assert _plain_transfer_batch(copy.deepcopy(body)) is None
    answer = _ours(copy.deepcopy(body))
    assert answer[0] == "refused"
    assert answer == _marshmallow(copy.deepcopy(body))


def _result(**changes):
    from datetime import datetime, timezone

    row = {"id": "t-1", "debit_account_id": "a", "credit_account_id": "b", "amount": 5, "code": "adjustment",
           "kind": "single", "pending_id": None, "status": "posted", "reference": None,
           "created_at": datetime(2026, 12, 6, 22, 30, 1, 123456, tzinfo=timezone.utc), "created": True}
    row.update(changes)
    return {"transfers": [row]}


@pytest.mark.parametrize("result", [
    _result(), _result(created=False, pending_id="p", reference="r", kind="pending", status="pending"),
    _result(created_at=__import__("datetime").datetime(2026, 1, 2, 3, 4, 5)),  # naive
    {"transfers": [_result()["transfers"][0]] * 3},
])
def test_a_result_is_written_as_marshmallow_writes_it(result):
    import json

    from payment.schemas import TransferBatchResultSchema, _plain_transfers_dump

    assert _plain_transfers_dump(result["transfers"]) is not None
    ours = TransferBatchResultSchema().dump(result)
    theirs = Schema.dump(TransferBatchResultSchema(), result)
    assert json.dumps(ours) == json.dumps(theirs)  # the same keys, values and order


@pytest.mark.parametrize("result", [_result(amount="5"), _result(created=1), _result(created_at=None),
                                    {"transfers": [{"id": "t"}]}])
def test_an_unusual_result_goes_through_marshmallow(result):
    from payment.schemas import TransferBatchResultSchema, _plain_transfers_dump

    assert _plain_transfers_dump(result["transfers"]) is None
    assert TransferBatchResultSchema().dump(result) == Schema.dump(TransferBatchResultSchema(), result)
