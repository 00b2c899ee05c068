"""Request and response schemas of the seal API (marshmallow, documented in OpenAPI)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from seal.models import GRANT_CLIENT, GRANT_SUBJECT, SEAL_KINDS, SEAL_STATUSES

HEX64 = validate.Regexp(r"^[0-9a-fA-F]{64}$", error="64 hexadecimal digits (an SM3 digest)")


class SealCreateSchema(Schema):
    org_code = fields.String(required=True, metadata={"description": "unified social credit code (GB 32100)"})
    org_name = fields.String(required=True, validate=validate.Length(1, 128))
    kind = fields.String(required=True, validate=validate.OneOf(list(SEAL_KINDS)))
    name = fields.String(validate=validate.Length(1, 128), metadata={"description": "default: org name + kind"})
    years = fields.Integer(load_default=5, validate=validate.Range(1, 20))
    image_base64 = fields.String(metadata={"description": "PNG, ≤ 256 KiB, 100–1000 px; generated if absent"})


class SealQuerySchema(Schema):
    org_code = fields.String()
    status = fields.String(validate=validate.OneOf(SEAL_STATUSES))


class SealSchema(Schema):
    id = fields.String()
    es_id = fields.String(metadata={"description": "seal code (esID)"})
    org_code = fields.String()
    org_name = fields.String()
    kind = fields.String()
    name = fields.String()
    status = fields.String()
    status_reason = fields.String(allow_none=True)
    status_changed_at = fields.DateTime(allow_none=True)
    valid_start = fields.DateTime()
    valid_end = fields.DateTime()
    image_width = fields.Integer()
    image_height = fields.Integer()
    image_generated = fields.Boolean()
    signer_serial = fields.String()
    created_at = fields.DateTime()
    usage_count = fields.Integer()
    image_url = fields.String()
    eseal_url = fields.String()


class StatusChangeSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(["suspend", "resume", "revoke"]))
    reason = fields.String(validate=validate.Length(max=255))


class ImageSchema(Schema):
    image_base64 = fields.String(required=True)


class SealEventSchema(Schema):
    id = fields.Integer()
    action = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    actor = fields.String(allow_none=True)
    at = fields.DateTime()


class GrantCreateSchema(Schema):
    grantee_type = fields.String(required=True, validate=validate.OneOf([GRANT_CLIENT, GRANT_SUBJECT]))
    grantee = fields.String(required=True, validate=validate.Length(1, 255),
                            metadata={"description": "OAuth client_id, or the token subject of a staff member"})


class GrantSchema(Schema):
    id = fields.Integer()
    grantee_type = fields.String()
    grantee = fields.String()
    granted_by = fields.String(allow_none=True)
    created_at = fields.DateTime()


class _DigestOrDocument(Schema):
    digest = fields.String(validate=HEX64, metadata={"description": "hex SM3 digest of the document"})
    document_base64 = fields.String(metadata={"description": "the document itself (size-limited)"})


class SignRequestSchema(_DigestOrDocument):
    property_info = fields.String(validate=validate.Length(1, 255),
                                  metadata={"description": "TBS_Sign propertyInfo (printable ASCII)"})

    @validates_schema
    def _one_of(self, data, **_kwargs):
        if ("digest" in data) == ("document_base64" in data):
            raise ValidationError("give exactly one of digest and document_base64", "_schema")


class SignResponseSchema(Schema):
    signature_id = fields.String()
    seal_id = fields.String()
    seal_code = fields.String()
    signed_at = fields.DateTime()
    document_digest = fields.String()
    signature_digest = fields.String()
    signature_base64 = fields.String(metadata={"description": "DER SES_Signature (GB/T 38540 v4)"})
    log_index = fields.Integer(allow_none=True)


class SignBatchItemSchema(Schema):
    digest = fields.String(required=True, validate=HEX64, metadata={"description": "hex SM3 digest of the document"})
    property_info = fields.String(validate=validate.Length(1, 255),
                                  metadata={"description": "TBS_Sign propertyInfo (printable ASCII)"})


class SignBatchRequestSchema(Schema):
    items = fields.List(fields.Nested(SignBatchItemSchema), required=True,
                        metadata={"description": "1..SEAL_SIGN_BATCH_MAX (100) digests, signed in this order"})


class SignBatchResponseSchema(Schema):
    signatures = fields.List(fields.Nested(SignResponseSchema), metadata={"description": "in request order"})


class VerifyRequestSchema(_DigestOrDocument):
    signature_base64 = fields.String(required=True, metadata={"description": "DER SES_Signature"})


class CheckSchema(Schema):
    ok = fields.Boolean()
    skipped = fields.Boolean()
    detail = fields.String()


class VerifyResponseSchema(Schema):
    valid = fields.Boolean()
    complete = fields.Boolean(metadata={"description": "valid and no check skipped"})
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckSchema))
    signed_at = fields.String(allow_none=True)
    seal = fields.Dict(allow_none=True)
    signer = fields.Dict(allow_none=True)
    data_hash = fields.String(allow_none=True)
    notes = fields.List(fields.String())
    error = fields.Dict(allow_none=True)


class CertificateStatusSchema(Schema):
    serial = fields.String()
    role = fields.String()
    subject = fields.String()
    status = fields.String()
    not_before = fields.DateTime()
    not_after = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)
    revocation_reason = fields.String(allow_none=True)
    seal_id = fields.String(allow_none=True)
