"""Request and response schemas of the message hub API (marshmallow, documented in OpenAPI)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from messaging.models import CATEGORIES, CHANNELS, PRIORITIES

CODE = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$", error="lower-case letters, digits and _, ≤ 64")


class RecipientSchema(Schema):
    # Checked in the domain (exactly one, formats), so that one bad entry is reported by index.
    class Meta:
        unknown = "include"

    subject = fields.String(metadata={"description": "identity subject (person id)"})
    phone = fields.String(metadata={"description": "mainland mobile number (apps allowed raw addresses only)"})
    email = fields.String(metadata={"description": "e-mail address (apps allowed raw addresses only)"})


class SendSchema(Schema):
    template = fields.String(required=True, validate=CODE)
    variables = fields.Dict(keys=fields.String(), load_default=dict)
    recipients = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1),
                             metadata={"description": 'each {"subject": ...} | {"phone": ...} | {"email": ...}'})
    category = fields.String(load_default="notice", validate=validate.OneOf(CATEGORIES))
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS)), load_default=lambda: ["inapp"],
                           validate=validate.Length(1, len(CHANNELS)),
                           metadata={"description": "channel order: the next one is tried if one fails"})
    scheduled_at = fields.AwareDateTime(metadata={"description": "send no earlier than this"})
    digest_key = fields.String(validate=validate.Length(1, 64),
                               metadata={"description": "low priority only: pending messages with one key go as one"})


class AcceptedSchema(Schema):
    message_id = fields.String()
    status = fields.String()
    job_id = fields.String(allow_none=True)


class RecipientStatusSchema(Schema):
    seq = fields.Integer()
    subject = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "queued, sent, delivered, read, failed, suppressed"})
    channel = fields.String(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "why suppressed or failed; quiet_hours "
                                                                   "while held"})
    updated_at = fields.DateTime()
    next_attempt_at = fields.DateTime(allow_none=True, metadata={
        "description": "when a queued recipient's delivery is due (end of quiet hours, scheduled time, retry)"})


class MessageStatusSchema(Schema):
    message_id = fields.String()
    status = fields.String(metadata={"description": "queued until every recipient is final, then completed"})
    template = fields.String()
    template_version = fields.Integer()
    category = fields.String()
    priority = fields.String()
    channels = fields.List(fields.String())
    job_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    recipients = fields.List(fields.Nested(RecipientStatusSchema))


class JobStatusSchema(Schema):
    job_id = fields.String()
    message_id = fields.String()
    status = fields.String(metadata={"description": "running; waiting (every recipient left is due later: quiet "
                                                    "hours, schedule, retry); completed"})
    total = fields.Integer(metadata={"description": "recipients in the request"})
    batches = fields.Integer(metadata={"description": "batches of MESSAGING_BATCH_SIZE the relay hands out"})
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"description": "recipients by status; they add up to total"})
    waiting = fields.Integer(metadata={"description": "recipients whose delivery is due later"})
    next_attempt_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)


class PageSchema(Schema):
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10_000_000))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class DeadLetterSchema(Schema):
    delivery_id = fields.Integer(attribute="id")
    message_id = fields.String()
    channel = fields.String()
    attempt = fields.Integer()
    last_error = fields.String(allow_none=True)
    updated_at = fields.DateTime()


class TemplateCreateSchema(Schema):
    code = fields.String(required=True, validate=CODE)
    variables = fields.List(fields.String(validate=validate.Regexp(r"^[a-z_][a-z0-9_]{0,31}$")), required=True,
                            validate=validate.Length(max=30))
    title = fields.String(required=True, validate=validate.Length(1, 255))
    body = fields.String(required=True, validate=validate.Length(1, 20_000))
    email_html = fields.String(validate=validate.Length(1, 200_000))
    sms_text = fields.String(validate=validate.Length(1, 500))
    sms_template_code = fields.String(validate=validate.Regexp(r"^SMS_[0-9A-Za-z_]{1,60}$"))


class TemplateSchema(Schema):
    code = fields.String()
    version = fields.Integer()
    variables = fields.List(fields.String())
    title = fields.String()
    body = fields.String()
    email_html = fields.String(allow_none=True)
    sms_text = fields.String(allow_none=True)
    sms_template_code = fields.String(allow_none=True)
    sms_approved_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class EndpointCreateSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(1, 2048))
    event_types = fields.List(fields.String(), load_default=lambda: ["message.completed", "message.failed"])


class EndpointSchema(Schema):
    id = fields.String()
    url = fields.String()
    event_types = fields.List(fields.String())
    enabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    failure_streak = fields.Integer()
    created_at = fields.DateTime()


class EndpointSecretSchema(EndpointSchema):
    secret = fields.String(metadata={"description": "whsec_...: shown on creation and rotation only"})


class InboxItemSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    body = fields.String()
    category = fields.String()
    read_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class InboxQuerySchema(PageSchema):
    unread = fields.Boolean(load_default=False)


class UnreadSchema(Schema):
    unread = fields.Integer()


class PreferenceSchema(Schema):
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    enabled = fields.Boolean(required=True)


class QuietHoursSchema(Schema):
    start = fields.String(allow_none=True, metadata={"description": "HH:MM China time; null clears"})
    end = fields.String(allow_none=True)


class ReceiptAckSchema(Schema):
    code = fields.Integer()
    msg = fields.String()
