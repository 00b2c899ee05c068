"""Request and response schemas of the auditor API (hashes travel as lowercase hex)."""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate

from common.db import BIGINT_MAX

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class HexHash(fields.String):
    """A 32-byte hash as 64 hex digits (SM3)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not HEX64.match(text):
            raise ValidationError("must be 64 hexadecimal digits (a 32-byte SM3 hash)")
        return text.lower()


# Leaf indexes and tree sizes are bigint columns; a larger number could never name anything.
INDEX = validate.Range(min=0, max=BIGINT_MAX)
SIZE = validate.Range(min=1, max=BIGINT_MAX)


class PageArgs(Schema):
    # page * per_page must stay a valid OFFSET; a million pages is far beyond any real listing.
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10**6))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class RangeArgs(Schema):
    start = fields.Integer(required=True, validate=INDEX,
                           metadata={"description": "first leaf index (inclusive)"})
    end = fields.Integer(required=True, validate=SIZE,
                         metadata={"description": "last leaf index (exclusive); at most 100 entries"})


class TreeSizeArgs(Schema):
    tree_size = fields.Integer(validate=SIZE, metadata={
        "description": "prove against the checkpoint of this size (default: the latest checkpoint)"})


class LeafHashArgs(TreeSizeArgs):
    leaf_hash = HexHash(required=True, metadata={"description": "SM3 leaf hash, H(0x00 || leaf), in hex"})


class SearchArgs(PageArgs):
    seal_id = fields.String(validate=validate.Length(max=64))
    seal_code = fields.String(validate=validate.Length(max=64))
    org_code = fields.String(validate=validate.Length(max=32))
    signer = fields.String(validate=validate.Length(max=255))
    document_digest = HexHash()
    since = fields.AwareDateTime(metadata={"description": "signing time from (inclusive), ISO 8601 with offset"})
    until = fields.AwareDateTime(metadata={"description": "signing time until (exclusive)"})


class CheckpointSchema(Schema):
    tree_size = fields.Integer(required=True)
    root_hash = fields.String(required=True, metadata={"description": "hex"})
    note = fields.String(required=True, metadata={"description": "C2SP signed note (tlog-checkpoint)"})
    key_id = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class EntrySchema(Schema):
    index = fields.Integer(required=True)
    leaf = fields.String(required=True, metadata={"description": "RFC 8785 canonical JSON of the event"})
    leaf_hash = fields.String(required=True)
    event = fields.Dict(required=True)
    ses_signature = fields.String(allow_none=True, metadata={"description": "base64 SES_Signature DER"})


class EntryProofSchema(Schema):
    entry = fields.Nested(EntrySchema, required=True)
    tree_size = fields.Integer(required=True)
    inclusion_proof = fields.List(fields.String(), required=True)
    checkpoint = fields.Nested(CheckpointSchema, required=True)


class InclusionSchema(Schema):
    leaf_index = fields.Integer(required=True)
    tree_size = fields.Integer(required=True)
    inclusion_proof = fields.List(fields.String(), required=True)
    checkpoint = fields.Nested(CheckpointSchema, required=True)


class ConsistencySchema(Schema):
    first = fields.Integer(required=True)
    second = fields.Integer(required=True)
    proof = fields.List(fields.String(), required=True)


class PageMeta(Schema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


class CheckpointPageSchema(PageMeta):
    items = fields.List(fields.Nested(CheckpointSchema))


class EntryListSchema(Schema):
    items = fields.List(fields.Nested(EntrySchema))


class EntryPageSchema(PageMeta):
    items = fields.List(fields.Nested(EntrySchema))


class LogKeySchema(Schema):
    key_id = fields.String(required=True)
    name = fields.String(required=True, metadata={"description": "signed-note key name (the log origin)"})
    key_hint = fields.String(required=True, metadata={"description": "4-byte signed-note key hint, hex"})
    algorithm = fields.String(required=True)
    status = fields.String(required=True)
    public_key_pem = fields.String(required=True)


class LogKeysSchema(Schema):
    origin = fields.String(required=True)
    keys = fields.List(fields.Nested(LogKeySchema))


class AuditQuerySchema(Schema):
    id = fields.Integer()
    time = fields.DateTime()
    subject = fields.String(allow_none=True)
    client_id = fields.String(allow_none=True)
    action = fields.String()
    query = fields.String()
    status = fields.Integer()
    outcome = fields.String()
    request_id = fields.String(allow_none=True)


class AuditQueryPageSchema(PageMeta):
    items = fields.List(fields.Nested(AuditQuerySchema))


class SelfCheckSchema(Schema):
    ok = fields.Boolean(required=True)
    size = fields.Integer()
    entries_checked = fields.Integer()
    nodes_checked = fields.Integer()
    checkpoints_checked = fields.Integer()
    problems = fields.List(fields.Dict())
