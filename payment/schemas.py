"""Request and response schemas of the payment API (marshmallow, documented in OpenAPI)."""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate

from common.db import BIGINT_MAX
from payment.ledger.models import TRANSFER_CODES
from payment.ledger.rules import KINDS, MAX_ID

# Bounds of a transfer request, shared by TransferInSchema and plain_transfer_batch.
ACCOUNT_ID_MAX = 128
REFERENCE_MAX = 64
BATCH_MAX = 1000

# PostgreSQL's text holds neither NUL nor a lone surrogate (UTF-8 has no encoding for one): such
# a value is refused with the request's other field errors (422) instead of failing the statement
# that writes it, and with it the other requests of a group commit.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class Storable(validate.Validator):
    """Text a database can store: no NUL, no unpaired surrogate. (A validator of its own rather
    than ``validate.Regexp``, which would put the pattern, surrogates and all, into OpenAPI.)"""

    error = "Must contain neither NUL nor an unpaired surrogate."

    def __call__(self, value: str) -> str:
        if _UNSTORABLE.search(value) is not None:
            raise ValidationError(self.error)
        return value


FEN = fields.Integer(strict=True, required=True, validate=validate.Range(1, BIGINT_MAX),
                     metadata={"description": "integer fen (分)"})


class NoticeItemInSchema(Schema):
    fee_code = fields.String(required=True, validate=validate.Length(1, 32))
    quantity = fields.Integer(strict=True, load_default=1, validate=validate.Range(1, 10_000))
    unit_amount = fields.Integer(strict=True, validate=validate.Range(1, BIGINT_MAX),
                                 metadata={"description": "fen; only for fees without a fixed price"})


class NoticeCreateSchema(Schema):
    payer_kind = fields.String(required=True, validate=validate.OneOf(["person", "organisation"]))
    payer_name = fields.String(required=True, validate=validate.Length(1, 100))
    payer_id = fields.String(required=True, validate=validate.Length(1, 32),
                             metadata={"description": "GB 11643 ID number or GB 32100 credit code"})
    payer_subject = fields.String(validate=validate.Length(1, 255),
                                  metadata={"description": "the payer's identity subject, to notify and list"})
    items = fields.List(fields.Nested(NoticeItemInSchema), required=True, validate=validate.Length(1, 50))
    total_amount = fields.Integer(strict=True, required=True, validate=validate.Range(1, BIGINT_MAX))
    due_date = fields.Date(required=True)
    case_reference = fields.String(validate=validate.Length(1, 64), metadata={"description": "办件编号"})
    late_fee_per_day_permille = fields.Integer(strict=True, validate=validate.Range(0, 30))


class NoticeItemSchema(Schema):
    line = fields.Integer()
    fee_code = fields.String()
    fee_name = fields.String()
    quantity = fields.Integer()
    unit_amount = fields.Integer()
    amount = fields.Integer()
    refunded_amount = fields.Integer()


class NoticeSchema(Schema):
    id = fields.String()
    payment_code = fields.String(metadata={"description": "缴款码, 20 digits"})
    status = fields.String()
    department_code = fields.String()
    department_name = fields.String()
    payer_kind = fields.String()
    payer_name = fields.String()
    payer_id_masked = fields.String()
    total_amount = fields.Integer()
    paid_amount = fields.Integer()
    refunded_amount = fields.Integer()
    due_date = fields.Date()
    case_reference = fields.String(allow_none=True)
    created_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    items = fields.List(fields.Nested(NoticeItemSchema))


class NoticeForPayerSchema(Schema):
    """What a payer sees after a lookup by payment code and name (no ids, no payer id)."""

    payment_code = fields.String()
    status = fields.String()
    department_name = fields.String()
    payer_name = fields.String()
    total_amount = fields.Integer()
    paid_amount = fields.Integer()
    due_date = fields.Date()
    items = fields.List(fields.Nested(NoticeItemSchema))


class NoticeEventSchema(Schema):
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    actor = fields.String()
    reason = fields.String(allow_none=True)
    at = fields.DateTime()


class LookupSchema(Schema):
    payment_code = fields.String(required=True, validate=validate.Regexp(r"^\d{20}$", error="20 digits"))
    payer_name = fields.String(required=True, validate=validate.Length(1, 100))


class CancelSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class RefundCreateSchema(Schema):
    amount = FEN
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class RefundSchema(Schema):
    id = fields.String()
    notice_id = fields.String()
    amount = fields.Integer()
    reason = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()


class TransferInSchema(Schema):
    id = fields.String(required=True, validate=[validate.Length(1, MAX_ID), Storable()])
    debit_account_id = fields.String(required=True, validate=[validate.Length(1, ACCOUNT_ID_MAX), Storable()])
    credit_account_id = fields.String(required=True, validate=[validate.Length(1, ACCOUNT_ID_MAX), Storable()])
    amount = FEN
    code = fields.String(required=True, validate=validate.OneOf(TRANSFER_CODES))
    kind = fields.String(load_default="single", validate=validate.OneOf(KINDS))
    pending_id = fields.String(validate=[validate.Length(1, MAX_ID), Storable()])
    reference = fields.String(validate=[validate.Length(1, REFERENCE_MAX), Storable()])


class TransferBatchSchema(Schema):
    transfers = fields.List(fields.Nested(TransferInSchema), required=True, validate=validate.Length(1, BATCH_MAX))


_TRANSFER_FIELDS = frozenset(TransferInSchema._declared_fields)
_CODES, _KINDS = frozenset(TRANSFER_CODES), frozenset(KINDS)


def plain_transfer_batch(body: object) -> dict | None:
    """``body`` (a request's parsed JSON) as :class:`TransferBatchSchema` would load it, when a
    few type and bound checks show the schema would accept it: each transfer's missing ``kind``
    is filled in with the schema's default, nothing else changes. None for anything else (an
    unknown or missing member, a wrong type, a value out of bounds), which the schema then
    parses and refuses with its own field errors.

    Why: on ``POST /ledger/transfers`` webargs and marshmallow cost the request more CPU than the
    ledger's own work in the request thread (docs/ARCHITECTURE.md, payment); these checks are
    the schema's rules, and tests/payment/test_schemas.py holds them to it body by body.
    """
    if type(body) is not dict or len(body) != 1:
        return None
    transfers = body.get("transfers")
    if type(transfers) is not list or not 1 <= len(transfers) <= BATCH_MAX:
        return None
    if not all(_plain_transfer(transfer) for transfer in transfers):
        return None
    for transfer in transfers:
        transfer.setdefault("kind", "single")
    return body


def _plain_transfer(transfer: object) -> bool:
    if type(transfer) is not dict or not transfer.keys() <= _TRANSFER_FIELDS:
        return False
    amount = transfer.get("amount")
    return (_text(transfer.get("id"), MAX_ID) and _text(transfer.get("debit_account_id"), ACCOUNT_ID_MAX)
            and _text(transfer.get("credit_account_id"), ACCOUNT_ID_MAX)
            and type(amount) is int and 1 <= amount <= BIGINT_MAX  # not a bool: marshmallow refuses those
            and _one_of(transfer.get("code"), _CODES)
            and ("kind" not in transfer or _one_of(transfer["kind"], _KINDS))
            and ("pending_id" not in transfer or _text(transfer["pending_id"], MAX_ID))
            and ("reference" not in transfer or _text(transfer["reference"], REFERENCE_MAX)))


def _text(value: object, most: int) -> bool:
    return type(value) is str and 1 <= len(value) <= most and _UNSTORABLE.search(value) is None


def _one_of(value: object, allowed: frozenset[str]) -> bool:
    return type(value) is str and value in allowed


class TransferSchema(Schema):
    id = fields.String()
    debit_account_id = fields.String()
    credit_account_id = fields.String()
    amount = fields.Integer()
    code = fields.String()
    kind = fields.String()
    pending_id = fields.String(allow_none=True)
    status = fields.String()
    reference = fields.String(allow_none=True)
    created_at = fields.DateTime()
    created = fields.Boolean(metadata={"description": "false: a replay of an existing transfer"})


class TransferBatchResultSchema(Schema):
    transfers = fields.List(fields.Nested(TransferSchema))


class AccountSchema(Schema):
    id = fields.String()
    kind = fields.String()
    name = fields.String()
    debits_must_not_exceed_credits = fields.Boolean()
    credits_must_not_exceed_debits = fields.Boolean()
    debits_pending = fields.Integer()
    debits_posted = fields.Integer()
    credits_pending = fields.Integer()
    credits_posted = fields.Integer()


class StatementSchema(Schema):
    id = fields.String()
    channel = fields.String()
    day = fields.Date()
    sha256 = fields.String()
    lines = fields.Integer()
    total_amount = fields.Integer()
    matched = fields.Integer()
    imported_by = fields.String()
    imported_at = fields.DateTime()


class DifferenceSchema(Schema):
    id = fields.String()
    kind = fields.String(metadata={"description": "missing_here | missing_at_channel | amount_mismatch | duplicate "
                                                  "| unknown_order"})
    order_id = fields.String(allow_none=True)
    line = fields.Integer(allow_none=True)
    amount_here = fields.Integer(allow_none=True)
    amount_at_channel = fields.Integer(allow_none=True)
    status = fields.String()
    resolution = fields.String(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    reason = fields.String(allow_none=True)


class ReconReportSchema(Schema):
    statement = fields.Nested(StatementSchema)
    differences = fields.List(fields.Nested(DifferenceSchema))


class ResolveSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(["post", "acknowledge"]))
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class SettlementSchema(Schema):
    transfer_id = fields.String()
    department_code = fields.String()
    amount = fields.Integer()
    created = fields.Boolean()


class ReceiptQuerySchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^\d{8}$", error="8 digits"))
    number = fields.String(required=True, validate=validate.Regexp(r"^\d{10}$", error="10 digits"))
    check_code = fields.String(required=True, validate=validate.Regexp(r"^\d{6}$", error="6 digits"))


class ReceiptSchema(Schema):
    code = fields.String()
    number = fields.String()
    status = fields.String(metadata={"description": "pending_seal | sealed"})
    digest = fields.String(metadata={"description": "SM3 of the canonical document (RFC 8785), hex"})
    seal_id = fields.String(allow_none=True)
    signature = fields.String(allow_none=True, metadata={"description": "base64 GB/T 38540 SES_Signature"})
    issued_at = fields.DateTime()
    sealed_at = fields.DateTime(allow_none=True)
    document = fields.Dict()
