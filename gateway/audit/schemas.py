"""Request and response schemas of the gateway's auditor API (hashes travel as lowercase hex)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from common.db import BIGINT_MAX

INDEX = validate.Range(min=0, max=BIGINT_MAX)
SIZE = validate.Range(min=1, max=BIGINT_MAX)
MAX_EXPORT = 10_000  # records per exported bundle over the API (the CLI has no such limit)


class SearchArgs(Schema):
    since = fields.AwareDateTime(metadata={"description": "records at or after this time (ISO 8601 with offset)"})
    until = fields.AwareDateTime(metadata={"description": "records before this time"})
    client_id = fields.String(validate=validate.Length(min=1, max=255))
    subject = fields.String(validate=validate.Length(min=1, max=255))
    route = fields.String(validate=validate.Length(min=1, max=255))
    status = fields.Integer(validate=validate.Range(min=100, max=599))
    request_id = fields.String(validate=validate.Length(min=1, max=128))
    kind = fields.String(validate=validate.OneOf(("request", "audit_query")))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10**6))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))

    @validates_schema
    def _ordered(self, data, **_kwargs):
        if data.get("since") and data.get("until") and data["until"] <= data["since"]:
            raise ValidationError("until must be after since", "until")


class RecordSchema(Schema):
    index = fields.Integer(required=True)
    leaf_hash = fields.String(required=True)
    leaf = fields.String(required=True, metadata={"description": "the canonical JSON the tree commits to"})
    record = fields.Dict(required=True)


class RecordPageSchema(Schema):
    items = fields.List(fields.Nested(RecordSchema), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)


class CheckpointSchema(Schema):
    tree_size = fields.Integer(required=True)
    root_hash = fields.String(required=True)
    note = fields.String(required=True, metadata={"description": "C2SP signed note (SM2)"})
    key_id = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class BundleSchema(Schema):
    format = fields.String(required=True)
    origin = fields.String(required=True)
    tree_size = fields.Integer(required=True)
    range = fields.Dict(required=True)
    checkpoint = fields.String(required=True)
    public_key = fields.Dict(allow_none=True)
    records = fields.List(fields.Dict(), required=True)
    range_proof = fields.List(fields.String(), required=True)
    consistency = fields.List(fields.Dict(), required=True)


class RecordProofSchema(RecordSchema):
    bundle = fields.Nested(BundleSchema, required=True, metadata={
        "description": "the record as a one-record bundle: verify with `xsn audit verify --bundle`"})


class ExportArgs(Schema):
    start = fields.Integer(required=True, validate=INDEX)
    end = fields.Integer(required=True, validate=SIZE)
    tree_size = fields.Integer(validate=SIZE, metadata={"description": "default: the latest checkpoint"})
    consistency_from = fields.List(fields.Integer(validate=INDEX), load_default=list,
                                   metadata={"description": "older tree sizes to prove consistency from"})

    @validates_schema
    def _range(self, data, **_kwargs):
        if data["end"] <= data["start"]:
            raise ValidationError("end must be after start", "end")
        if data["end"] - data["start"] > MAX_EXPORT:
            raise ValidationError(f"at most {MAX_EXPORT} records per export", "end")


class TreeSizeArgs(Schema):
    tree_size = fields.Integer(validate=SIZE)


class ConsistencySchema(Schema):
    first = fields.Integer(required=True)
    second = fields.Integer(required=True)
    proof = fields.List(fields.String(), required=True)


class KeysSchema(Schema):
    origin = fields.String(required=True)
    keys = fields.List(fields.Dict(), required=True)
