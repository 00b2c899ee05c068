"""The transfer request's fast path holds to TransferBatchSchema: it accepts exactly the bodies the
schema loads, and gives what the schema would load."""

from __future__ import annotations

import copy

import marshmallow as ma
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.db import BIGINT_MAX
from payment.ledger.models import TRANSFER_CODES
from payment.ledger.rules import KINDS, MAX_ID
from payment.schemas import ACCOUNT_ID_MAX, BATCH_MAX, REFERENCE_MAX, TransferBatchSchema, plain_transfer_batch

GOOD = {"id": "t1", "debit_account_id": "bench:1", "credit_account_id": "bench:2", "amount": 100, "code": "payment"}

# A value of each JSON type, for a member (or a body) of another type.
JSON_VALUES = [None, True, False, 0, 1, 1.0, 100.5, "1", [], {}, ["x"], {"a": 1}]
OTHERS = st.sampled_from(JSON_VALUES)


def _text(most: int):
    return st.one_of(st.sampled_from(["", "a", "é" * most, "x" * most, "x" * (most + 1), "中" * (most + 1)]),
                     st.text(max_size=most + 2), OTHERS)


AMOUNTS = st.one_of(st.sampled_from([0, 1, -1, BIGINT_MAX, BIGINT_MAX + 1, 2**70, True, 1.0, "100"]),
                    st.integers(-10, 10**20), OTHERS)
MEMBERS = {
    "id": _text(MAX_ID),
    "debit_account_id": _text(ACCOUNT_ID_MAX),
    "credit_account_id": _text(ACCOUNT_ID_MAX),
    "amount": AMOUNTS,
    "code": st.one_of(st.sampled_from([*TRANSFER_CODES, "Payment", "", "nope"]), OTHERS),
    "kind": st.one_of(st.sampled_from([*KINDS, "SINGLE", ""]), OTHERS),
    "pending_id": _text(MAX_ID),
    "reference": _text(REFERENCE_MAX),
    "extra": st.just(1),
}


VALID_OPTIONAL = {"kind": st.sampled_from(KINDS), "pending_id": st.text(min_size=1, max_size=MAX_ID),
                  "reference": st.text(min_size=1, max_size=REFERENCE_MAX)}


@st.composite
def transfers(draw, changes: int = 2):
    """A valid transfer (some optional members too) with up to ``changes`` members replaced,
    added or dropped: at most a step or two from the schema's rules."""
    transfer = dict(GOOD)
    for name, values in VALID_OPTIONAL.items():
        if draw(st.booleans()):
            transfer[name] = draw(values)
    for name in draw(st.lists(st.sampled_from(sorted(MEMBERS)), max_size=changes, unique=True)):
        if draw(st.integers(0, 5)) == 0:
            transfer.pop(name, None)
        else:
            transfer[name] = draw(MEMBERS[name])
    return transfer


BODIES = st.one_of(
    # one transfer off the rules (or not) among valid ones: where a wrong bound would show
    st.builds(lambda before, odd, after: {"transfers": [*before, odd, *after]},
              st.lists(transfers(0), max_size=2), transfers(), st.lists(transfers(0), max_size=1)),
    st.builds(lambda items: {"transfers": items}, st.lists(st.one_of(transfers(), OTHERS), max_size=3)),
    st.builds(lambda items: {"transfers": items, "more": 1}, st.lists(transfers(0), min_size=1, max_size=2)),
    st.builds(lambda value: {"transfers": value}, OTHERS),
    OTHERS,
)


def _bounds(most: int) -> list:
    return ["", "a", "x" * most, "中" * most, "x" * (most + 1), "中" * (most + 1)]


# Every member on either side of each of its rules, and of every JSON type but its own.
EDGES = {
    "id": _bounds(MAX_ID),
    "debit_account_id": _bounds(ACCOUNT_ID_MAX),
    "credit_account_id": _bounds(ACCOUNT_ID_MAX),
    "amount": [0, 1, -1, BIGINT_MAX, BIGINT_MAX + 1, 2**70, "100"],
    "code": [*TRANSFER_CODES, "Payment", "", "nope"],
    "kind": [*KINDS, "SINGLE", ""],
    "pending_id": _bounds(MAX_ID),
    "reference": _bounds(REFERENCE_MAX),
    "extra": [1],
}


def test_each_member_at_each_edge_of_its_rules():
    cases = [{"transfers": [{k: v for k, v in GOOD.items() if k != name}]} for name in GOOD]
    cases += [{"transfers": [{**GOOD, name: value}]} for name, values in EDGES.items()
              for value in [*values, *JSON_VALUES]]
    cases += [{"transfers": value} for value in JSON_VALUES] + JSON_VALUES
    wrong = [body for body in cases if plain_transfer_batch(copy.deepcopy(body)) != _schema_load(body)]
    assert not wrong
    inside = [body for body in cases if plain_transfer_batch(copy.deepcopy(body)) is not None]
    assert len(inside) == 32  # the edges inside the rules take the fast path


def _schema_load(body):
    try:
        return TransferBatchSchema().load(copy.deepcopy(body))
    except ma.ValidationError:
        return None


@settings(max_examples=500, deadline=None)
@given(BODIES)
def test_the_fast_path_takes_exactly_what_the_schema_loads_and_gives_the_same(body):
    assert plain_transfer_batch(copy.deepcopy(body)) == _schema_load(body)


@pytest.mark.parametrize("body", [
    {"transfers": [GOOD]},
    {"transfers": [{**GOOD, "kind": "pending", "reference": "r" * REFERENCE_MAX}]},
    {"transfers": [{**GOOD, "kind": "post", "pending_id": "p" * MAX_ID, "amount": BIGINT_MAX}] * 3},
    {"transfers": [{**GOOD, "id": f"t{i}"} for i in range(BATCH_MAX)]},
])
def test_the_usual_bodies_take_the_fast_path(body):
    fast = plain_transfer_batch(copy.deepcopy(body))
    assert fast is not None and fast == TransferBatchSchema().load(copy.deepcopy(body))


@pytest.mark.parametrize("body", [
    {"transfers": []},
    {"transfers": [GOOD] * (BATCH_MAX + 1)},
    {"transfers": [{**GOOD, "amount": True}]},
    {"transfers": [{**GOOD, "amount": BIGINT_MAX + 1}]},
    {"transfers": [{**GOOD, "pending_id": None}]},
    {"transfers": [{**GOOD, "id": "x" * (MAX_ID + 1)}]},
    {"transfers": [{**GOOD, "code": ["payment"]}]},
    {"transfers": [{**GOOD, "extra": 1}]},
    {"transfers": [{k: v for k, v in GOOD.items() if k != "code"}]},
    {"transfers": [GOOD], "extra": 1},
    [GOOD],
])
def test_bodies_the_schema_refuses_are_left_to_it(body):
    assert plain_transfer_batch(copy.deepcopy(body)) is None
    assert _schema_load(body) is None
