"""REST API of the message hub (thin views over the domain modules).

Scopes (identity's access tokens, audience ``xsn:messaging``): ``messaging:send`` — send,
status, dead letters, the app's templates and webhook endpoints (all per app: the token's
``client_id``); ``messaging:admin`` — approve SMS templates; ``messaging:inbox`` — a person's
own inbox and preferences (the token's ``sub``). SMS receipts authenticate with the carrier's
shared token, not a bearer token.
"""

from __future__ import annotations

import hmac

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from common.db import get_session
from common.errors import Unauthorized, ValidationFailed
from common.web import idempotency
from common.web.auth import BEARER, current_claims, require_token
from common.web.ratelimit import get_limits
from messaging import catalogue, dead_letters, jobs, policy, receipts, sending, wiring
from messaging.channels import inapp, sms, webhooks
from messaging.models import Template
from messaging.schemas import (
    AcceptedSchema,
    DeadLetterSchema,
    EndpointCreateSchema,
    EndpointSchema,
    EndpointSecretSchema,
    InboxItemSchema,
    InboxQuerySchema,
    JobStatusSchema,
    MessageStatusSchema,
    PageSchema,
    PreferenceSchema,
    QuietHoursSchema,
    ReceiptAckSchema,
    SendSchema,
    TemplateCreateSchema,
    TemplateSchema,
    UnreadSchema,
)

SEND, ADMIN, INBOX = "messaging:send", "messaging:admin", "messaging:inbox"
blp = Blueprint("messages", __name__, url_prefix="/", description="Sending and delivery status")
inbox_blp = Blueprint("inbox", __name__, url_prefix="/inbox", description="A person's in-app inbox")
hooks_blp = Blueprint("webhooks", __name__, url_prefix="/webhooks", description="The app's webhook endpoints")


def _app() -> str:
    return str(current_claims()["client_id"])


def _me() -> str:
    return str(current_claims()["sub"])


def _hub():
    return current_app.extensions["messaging"]


def _message_view(message, offset: int = 0, limit: int = 100) -> dict:
    session = get_session()
    template = session.get(Template, message.template_id)
    recipients = sending.recipients_page(session, message.id, offset, limit)
    return {"message_id": message.id, "status": message.status, "template": template.code,
            "template_version": template.version, "category": message.category, "priority": message.priority,
            "channels": message.channels, "job_id": message.job_id, "created_at": message.created_at,
            "completed_at": message.completed_at, "counts": sending.recipient_counts(session, message.id),
            "recipients": recipients}


@blp.route("/messages")
class Messages(MethodView):
    @require_token(SEND)
    @blp.arguments(SendSchema)
    @blp.response(202, AcceptedSchema)
    @blp.alt_response(200, schema=AcceptedSchema, description="replay of an earlier request (Idempotency-Key)")
    @blp.doc(security=BEARER, parameters=[idempotency.parameter()])
    def post(self, body):
        """Send a templated message to people (identity subjects) or raw addresses."""
        hub = _hub()
        accepted = sending.accept_message(get_session(), client_id=_app(), body=body,
                                          idempotency_key=idempotency.idempotency_key(),
                                          directory=hub.directory, limiter=get_limits(), limits=hub.limits)
        message = accepted.message
        payload = {"message_id": message.id, "status": "queued", "job_id": message.job_id}
        if accepted.replay:
            return payload, 200, {"Idempotent-Replayed": "true"}
        hub.kick()
        return payload


@blp.route("/messages/<message_id>")
class MessageStatus(MethodView):
    @require_token(SEND)
    @blp.arguments(PageSchema, location="query")
    @blp.response(200, MessageStatusSchema)
    @blp.doc(security=BEARER)
    def get(self, page, message_id):
        """A message's status and its recipients' (paged by ``offset``/``limit``)."""
        return _message_view(sending.get_message(get_session(), _app(), message_id), page["offset"], page["limit"])


@blp.route("/jobs/<job_id>")
class JobStatus(MethodView):
    @require_token(SEND)
    @blp.response(200, JobStatusSchema)
    @blp.doc(security=BEARER)
    def get(self, job_id):
        """A bulk send's progress: running, waiting (only later deliveries left) or completed."""
        return jobs.job_status(get_session(), _app(), job_id)


@blp.route("/dead-letters")
class DeadLetters(MethodView):
    @require_token(SEND)
    @blp.arguments(PageSchema, location="query")
    @blp.response(200, DeadLetterSchema(many=True))
    @blp.doc(security=BEARER)
    def get(self, page):
        """Deliveries that ran out of retries and channels (this app's)."""
        return dead_letters.for_app(get_session(), _app(), offset=page["offset"], limit=page["limit"])


@blp.route("/dead-letters/<int:delivery_id>/replay")
class Replay(MethodView):
    @require_token(SEND)
    @blp.response(202, DeadLetterSchema)
    @blp.doc(security=BEARER)
    def post(self, delivery_id):
        """Queue a dead delivery once more."""
        row = dead_letters.replay(get_session(), _app(), delivery_id)
        _hub().kick()
        return row


@blp.route("/templates")
class Templates(MethodView):
    @require_token(SEND)
    @blp.response(200, TemplateSchema(many=True))
    @blp.doc(security=BEARER)
    def get(self):
        """The app's templates, every version."""
        return catalogue.list_templates(get_session(), _app())

    @require_token(SEND)
    @blp.arguments(TemplateCreateSchema)
    @blp.response(201, TemplateSchema)
    @blp.doc(security=BEARER)
    def post(self, body):
        """A new version of a template (its SMS text then awaits approval)."""
        return catalogue.create_template(get_session(), _app(), body)


@blp.route("/apps/<app>/templates/<code>/versions/<int:version>/approve-sms")
class ApproveSms(MethodView):
    @require_token(ADMIN)
    @blp.response(200, TemplateSchema)
    @blp.doc(security=BEARER)
    def post(self, app, code, version):
        """Approve a template version's SMS text (operators)."""
        return catalogue.approve_sms(get_session(), app, code, version)


@blp.route("/receipts/sms")
class SmsReceipts(MethodView):
    @blp.response(200, ReceiptAckSchema)
    def post(self):
        """Delivery receipts from the SMS carrier (Aliyun SmsReport format; carrier token header)."""
        token = request.headers.get("X-XSN-Receipt-Token", "")
        if not hmac.compare_digest(token.encode(), wiring.receipt_token(current_app.config).encode()):
            raise Unauthorized("the receipt token is missing or wrong", code="invalid_receipt_token")
        try:
            reports = sms.parse_receipts(request.get_json(silent=True))
        except ValueError as exc:
            raise ValidationFailed(str(exc), code="invalid_receipts") from exc
        session = get_session()
        results = [receipts.apply_receipt(session, biz_id, success, error) for biz_id, success, error in reports]
        _hub().kick()
        if "unknown" in results:  # the carrier pushes the report again later (1, 5, 10 minutes)
            return {"code": 1, "msg": "部分回执未匹配，请稍后重推 / unknown BizId, push again later"}
        return {"code": 0, "msg": "成功"}


# -- webhooks ---------------------------------------------------------------------------------------
@hooks_blp.route("")
class Endpoints(MethodView):
    @require_token(SEND)
    @hooks_blp.response(200, EndpointSchema(many=True))
    @hooks_blp.doc(security=BEARER)
    def get(self):
        return webhooks.list_endpoints(get_session(), _app())

    @require_token(SEND)
    @hooks_blp.arguments(EndpointCreateSchema)
    @hooks_blp.response(201, EndpointSecretSchema)
    @hooks_blp.doc(security=BEARER)
    def post(self, body):
        """Register an endpoint for the app's events; the answer carries its whsec_ secret."""
        return webhooks.create_endpoint(get_session(), _app(), body["url"], body["event_types"],
                                        allow_private=wiring.allow_private_webhooks(current_app.config))


@hooks_blp.route("/<endpoint_id>/rotate-secret")
class RotateSecret(MethodView):
    @require_token(SEND)
    @hooks_blp.response(200, EndpointSecretSchema)
    @hooks_blp.doc(security=BEARER)
    def post(self, endpoint_id):
        """A new secret; the old one also signs for 24 hours."""
        session = get_session()
        return webhooks.rotate_secret(session, webhooks.get_endpoint(session, _app(), endpoint_id))


@hooks_blp.route("/<endpoint_id>/enable")
class EnableEndpoint(MethodView):
    @require_token(SEND)
    @hooks_blp.response(200, EndpointSchema)
    @hooks_blp.doc(security=BEARER)
    def post(self, endpoint_id):
        """Enable a disabled endpoint again (its failure streak starts over)."""
        session = get_session()
        return webhooks.enable(session, webhooks.get_endpoint(session, _app(), endpoint_id))


# -- a person's inbox and preferences ---------------------------------------------------------------
@inbox_blp.route("")
class Inbox(MethodView):
    @require_token(INBOX)
    @inbox_blp.arguments(InboxQuerySchema, location="query")
    @inbox_blp.response(200, InboxItemSchema(many=True))
    @inbox_blp.doc(security=BEARER)
    def get(self, query):
        return inapp.list_items(get_session(), _me(), unread_only=query["unread"], offset=query["offset"],
                                limit=query["limit"])


@inbox_blp.route("/unread-count")
class Unread(MethodView):
    @require_token(INBOX)
    @inbox_blp.response(200, UnreadSchema)
    @inbox_blp.doc(security=BEARER)
    def get(self):
        return {"unread": inapp.unread_count(get_session(), _me())}


@inbox_blp.route("/<int:item_id>")
class InboxEntry(MethodView):
    @require_token(INBOX)
    @inbox_blp.response(200, InboxItemSchema)
    @inbox_blp.doc(security=BEARER)
    def get(self, item_id):
        return inapp.get_item(get_session(), _me(), item_id)

    @require_token(INBOX)
    @inbox_blp.response(204)
    @inbox_blp.doc(security=BEARER)
    def delete(self, item_id):
        inapp.delete_item(get_session(), _me(), item_id)


@inbox_blp.route("/<int:item_id>/read")
class InboxRead(MethodView):
    @require_token(INBOX)
    @inbox_blp.response(200, InboxItemSchema)
    @inbox_blp.doc(security=BEARER)
    def post(self, item_id):
        return inapp.mark_read(get_session(), _me(), item_id)


@inbox_blp.route("/preferences")
class Preferences(MethodView):
    @require_token(INBOX)
    @inbox_blp.response(200, PreferenceSchema(many=True))
    @inbox_blp.doc(security=BEARER)
    def get(self):
        return policy.preferences(get_session(), _me())

    @require_token(INBOX)
    @inbox_blp.arguments(PreferenceSchema)
    @inbox_blp.response(200, PreferenceSchema)
    @inbox_blp.doc(security=BEARER)
    def put(self, body):
        """Turn one category on one channel on or off (critical messages ignore it)."""
        return policy.set_preference(get_session(), _me(), body["category"], body["channel"], body["enabled"])


@inbox_blp.route("/quiet-hours")
class Quiet(MethodView):
    @require_token(INBOX)
    @inbox_blp.arguments(QuietHoursSchema)
    @inbox_blp.response(200, QuietHoursSchema)
    @inbox_blp.doc(security=BEARER)
    def put(self, body):
        """SMS and e-mail wait until the window ends (critical messages do not)."""
        policy.set_quiet_hours(get_session(), _me(), body.get("start"), body.get("end"))
        return body
