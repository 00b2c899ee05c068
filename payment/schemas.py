"""Request and response schemas of the payment API (marshmallow, documented in OpenAPI)."""

from __future__ import annotations

from datetime import datetime

from marshmallow import RAISE, Schema, fields, validate

from common.db import BIGINT_MAX
from payment.ledger.models import TRANSFER_CODES
from payment.ledger.transfers import KINDS, MAX_ID

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
    id = fields.String(required=True, validate=validate.Length(1, MAX_ID))
    debit_account_id = fields.String(required=True, validate=validate.Length(1, 128))
    credit_account_id = fields.String(required=True, validate=validate.Length(1, 128))
    amount = FEN
    code = fields.String(required=True, validate=validate.OneOf(TRANSFER_CODES))
    kind = fields.String(load_default="single", validate=validate.OneOf(KINDS))
    pending_id = fields.String(validate=validate.Length(1, MAX_ID))
    reference = fields.String(validate=validate.Length(1, 64))


class TransferBatchSchema(Schema):
    transfers = fields.List(fields.Nested(TransferInSchema), required=True, validate=validate.Length(1, 1000))

    def load(self, data, *, many=None, partial=None, unknown=None):
        """The ledger's hot path (``POST /ledger/transfers``, one request per transfer): a body
        that is plainly valid is checked by :func:`_plain_transfer_batch` at a fraction of
        marshmallow's CPU; anything else (any doubt) goes through marshmallow, so every refusal
        and its messages are marshmallow's own (tests/payment/test_transfer_schema.py)."""
        if not (many or partial or unknown or self.many or self.partial) and self.unknown == RAISE:
            plain = _plain_transfer_batch(data)
            if plain is not None:
                return plain
        return super().load(data, many=many, partial=partial, unknown=unknown)


_TRANSFER_REQUIRED = ("id", "debit_account_id", "credit_account_id", "amount", "code")
_TRANSFER_KEYS = frozenset((*_TRANSFER_REQUIRED, "kind", "pending_id", "reference"))
_CODES, _KINDS = frozenset(TRANSFER_CODES), frozenset(KINDS)


def _plain_transfer_batch(data) -> dict | None:
    """What ``TransferBatchSchema`` loads from ``data`` when every rule of TransferInSchema
    plainly holds (exact JSON types, no unknown or null field); None otherwise (then
    marshmallow judges it). Mirrors the field declarations above: a rule changed there must
    change here (the equivalence test compares both on valid and invalid bodies)."""
    if type(data) is not dict or data.keys() != {"transfers"}:
        return None
    items = data["transfers"]
    if type(items) is not list or not 1 <= len(items) <= 1000:
        return None
    loaded = []
    for item in items:
        if type(item) is not dict or not item.keys() <= _TRANSFER_KEYS:
            return None
        try:
            id_, debit, credit, amount, code = (item[key] for key in _TRANSFER_REQUIRED)
        except KeyError:
            return None
        if not (type(id_) is str and 1 <= len(id_) <= MAX_ID and type(debit) is str and 1 <= len(debit) <= 128
                and type(credit) is str and 1 <= len(credit) <= 128 and type(amount) is int
                and 1 <= amount <= BIGINT_MAX and type(code) is str and code in _CODES):
            return None
        out = {"id": id_, "debit_account_id": debit, "credit_account_id": credit, "amount": amount, "code": code,
               "kind": item.get("kind", "single")}
        if type(out["kind"]) is not str or out["kind"] not in _KINDS:
            return None
        for key, longest in (("pending_id", MAX_ID), ("reference", 64)):
            if key in item:
                value = item[key]
                if type(value) is not str or not 1 <= len(value) <= longest:
                    return None
                out[key] = value
        loaded.append(out)
    return {"transfers": loaded}


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

    def dump(self, obj, *, many=None):
        """The ledger's hot path: the view's own plain dicts (exact types) are written as
        marshmallow writes them, in its field order, without its per-field machinery; anything
        else goes through marshmallow (tests/payment/test_transfer_schema.py compares both)."""
        if not (many or self.many or self.only or self.exclude) and type(obj) is dict and obj.keys() == {"transfers"}:
            plain = _plain_transfers_dump(obj["transfers"])
            if plain is not None:
                return {"transfers": plain}
        return super().dump(obj, many=many)


_TRANSFER_OUT = ("id", "debit_account_id", "credit_account_id", "amount", "code", "kind", "pending_id", "status",
                 "reference", "created_at", "created")
_OUT_TYPES = {"amount": (int,), "created_at": (datetime,), "created": (bool,)}
_STRING_OR_NONE = (str, type(None))


def _plain_transfers_dump(transfers) -> list | None:
    if type(transfers) is not list:
        return None
    dumped = []
    for transfer in transfers:
        if type(transfer) is not dict or transfer.keys() != set(_TRANSFER_OUT) or any(
                type(transfer[key]) not in _OUT_TYPES.get(key, _STRING_OR_NONE) for key in _TRANSFER_OUT):
            return None
        out = {key: transfer[key] for key in _TRANSFER_OUT}
        out["created_at"] = out["created_at"].isoformat()
        dumped.append(out)
    return dumped


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
