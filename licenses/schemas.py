"""Request and response schemas of the licences API (marshmallow, documented in OpenAPI)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, validate
from marshmallow import fields as mf


class FieldSpecSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = mf.String(required=True)
    label = mf.String(required=True)
    label_en = mf.String()
    type = mf.String(load_default="string", metadata={"description": "string text date integer enum citizen_id "
                                                                          "credit_code"})
    required = mf.Boolean(load_default=True)
    personal = mf.Boolean(load_default=False, metadata={"description": "personal data (个人信息)"})
    max_length = mf.Integer()
    pattern = mf.String()
    choices = mf.List(mf.String())


class LicenceTypeSchema(Schema):
    code = mf.String(required=True, metadata={"description": "owner's credit code + 3 digits (GB/T 36904)"})
    slug = mf.String(required=True)
    name = mf.String(required=True)
    name_en = mf.String(allow_none=True)
    holder_kind = mf.String(required=True, validate=validate.OneOf(["person", "organisation"]))
    issuers = mf.List(mf.String(), required=True, metadata={"description": "credit codes of the "
                                                                                  "departments that may issue"})
    face = mf.List(mf.Nested(FieldSpecSchema), required=True, data_key="fields")
    validity_days = mf.Integer(allow_none=True, load_default=None)
    seal_kind = mf.String(load_default="license")
    face_prefix = mf.String(load_default="")
    status = mf.String(dump_only=True)
    created_at = mf.DateTime(dump_only=True)
    updated_at = mf.DateTime(dump_only=True)


class LicenceTypeUpdateSchema(LicenceTypeSchema):
    code = mf.String(metadata={"description": "ignored: a type keeps its code"})
    slug = mf.String(metadata={"description": "ignored: a type keeps its slug"})


class TypeStatusSchema(Schema):
    status = mf.String(required=True, validate=validate.OneOf(["active", "retired"]))


class ContactSchema(Schema):
    subject = mf.String()
    phone = mf.String()
    email = mf.String()


class IssueSchema(Schema):
    type_code = mf.String(required=True, metadata={"description": "type code or slug"})
    holder_code = mf.String(required=True, metadata={"description": "citizen ID number or credit code"})
    holder_name = mf.String(required=True)
    face = mf.Dict(required=True, data_key="fields")
    valid_from = mf.Date()
    valid_until = mf.Date()
    issuer_code = mf.String(metadata={"description": "the department, when the token maps to several"})
    notify = mf.List(mf.Nested(ContactSchema), load_default=list)


class EventSchema(Schema):
    action = mf.String()
    from_status = mf.String(allow_none=True)
    to_status = mf.String(allow_none=True)
    reason = mf.String(allow_none=True)
    actor = mf.String()
    client_id = mf.String(allow_none=True)
    at = mf.DateTime()


class LicenceSchema(Schema):
    id = mf.String()
    identifier = mf.String()
    type_code = mf.String()
    type_name = mf.String()
    version = mf.Integer()
    face_number = mf.String()
    issuer = mf.Dict()
    holder = mf.Dict()
    status = mf.String()
    status_reason = mf.String(allow_none=True)
    valid_from = mf.Date()
    valid_until = mf.Date(allow_none=True)
    issued_at = mf.DateTime(allow_none=True)
    face = mf.Dict(data_key="fields")
    labels = mf.Dict()
    document_sm3 = mf.String()
    seal_id = mf.String(allow_none=True)
    signature_id = mf.String(allow_none=True)
    signed_at = mf.DateTime(allow_none=True)
    supersedes = mf.String(allow_none=True)
    history = mf.List(mf.Nested(EventSchema))


class LicenceQuerySchema(Schema):
    type_code = mf.String()
    status = mf.String()
    limit = mf.Integer(load_default=100, validate=validate.Range(1, 1000))


class StatusChangeSchema(Schema):
    action = mf.String(required=True, validate=validate.OneOf(["suspend", "resume", "revoke"]))
    reason = mf.String(validate=validate.Length(max=200))
    kind = mf.String(metadata={"description": "revoke: cancelled (注销) or withdrawn (吊销)"})


class AmendSchema(Schema):
    face = mf.Dict(load_default=dict, data_key="fields")
    holder_name = mf.String()
    valid_until = mf.Date()
    reason = mf.String(required=True, validate=validate.Length(min=1, max=200))


class AuthoriseSchema(Schema):
    licence_id = mf.String(required=True)
    face = mf.List(mf.String(), required=True, data_key="fields")
    purpose = mf.String(required=True, metadata={"description": "用证事由"})
    audience = mf.String(required=True, metadata={"description": "credit code of the verifying organisation, "
                                                                      "or the verifying client id"})
    minutes = mf.Integer(required=True)
    max_uses = mf.Integer(load_default=1)


class AuthorisationSchema(Schema):
    id = mf.String()
    code = mf.String()
    licence_id = mf.String()
    face = mf.List(mf.String(), data_key="fields")
    purpose = mf.String()
    audience = mf.String()
    expires_at = mf.DateTime()
    max_uses = mf.Integer()
    uses = mf.Integer()
    status = mf.String()
    created_at = mf.DateTime()
    revoked_at = mf.DateTime(allow_none=True)
    # An organisation acts through any of its agents, and any of them may revoke: its app shows
    # which colleague granted a use and which stopped it, as the holder's pages do (授权人, 撤销人).
    # Names and "was it me" only: every app acting for the organisation reads this, and none
    # needs the colleagues' identity subjects (stable identifiers of people).
    granted_by_name = mf.String(allow_none=True, metadata={
        "description": "who granted it (the holder or an agent), their name as identity gave it when they granted; "
                       "null for grants recorded before names were"})
    granted_by_me = mf.Boolean(metadata={"description": "whether the caller granted it"})
    revoked_by_name = mf.String(allow_none=True, metadata={"description": "who revoked it, their name as identity "
                                                                          "gave it then; null while active"})
    revoked_by_me = mf.Boolean(metadata={"description": "whether the caller revoked it"})
    qr_url = mf.String()


class UseRecordSchema(Schema):
    at = mf.DateTime()
    verifier = mf.String()
    verifier_client = mf.String(allow_none=True)
    verifier_org = mf.String(allow_none=True)
    purpose = mf.String(allow_none=True)
    outcome = mf.String()
    reason = mf.String(allow_none=True)


class OfflineCodeSchema(Schema):
    code = mf.String()
    expires_at = mf.Integer()
    qr_url = mf.String()


# An authorisation code's length as /verify accepts it; holder_api's plain-body fast path uses
# the same bounds (tests/licenses/test_verification.py checks the two answer alike).
CODE_MIN, CODE_MAX = 1, 64


class VerifyRequestSchema(Schema):
    code = mf.String(required=True, validate=validate.Length(min=CODE_MIN, max=CODE_MAX))


class VerifyResultSchema(Schema):
    valid = mf.Boolean()
    checks = mf.Dict()
    purpose = mf.String()
    licence = mf.Dict()
    face = mf.Dict(data_key="fields")
    labels = mf.Dict()
    authorisation = mf.Dict()


class BulkJobSchema(Schema):
    id = mf.String()
    type_code = mf.String()
    issuer_code = mf.String()
    status = mf.String()
    total = mf.Integer()
    invalid = mf.Integer()
    issued = mf.Integer()
    pending = mf.Integer()
    last_error = mf.String(allow_none=True)
    errors = mf.List(mf.Dict())
    created_at = mf.DateTime()
    finished_at = mf.DateTime(allow_none=True)
