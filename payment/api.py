"""REST API of the payment node (thin views over the domain modules).

Authorisation (identity's access tokens, audience ``xsn:payment``):

* ``payment:collect`` — a collecting department's system: issue, read, cancel and refund its
  own notices. The department is the one ``PAYMENT_DEPARTMENTS`` names for the token's client.
* ``payment:admin`` — the ledger: accounts and transfers.
* open — a payer's lookup by payment code and name (rate limited per address).
"""

from __future__ import annotations

import time
from datetime import date

from flask import Response, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from common.crypto.keystore import load_kek
from common.crypto.pii import PiiCipher
from common.db import get_db, get_session
from common.errors import Forbidden
from common.web import idempotency
from common.web.arguments import arguments_or
from common.web.auth import BEARER, current_claims, require_token
from common.web.extensions import app_singleton
from common.web.ratelimit import rate_limit
from payment import callbacks, notices, payments
from payment.ledger.group_commit import GroupCommitter, InlineWriter, LedgerWriter
from payment.ledger.group_write import OneStatementWriter
from payment.ledger.models import LedgerAccount
from payment.ledger.transfers import TransferResult, TransferSpec
from payment.models import NoticeEvent
from payment.schemas import (
    AccountSchema,
    CancelSchema,
    LookupSchema,
    NoticeCreateSchema,
    NoticeEventSchema,
    NoticeForPayerSchema,
    NoticeSchema,
    RefundCreateSchema,
    RefundSchema,
    TransferBatchResultSchema,
    TransferBatchSchema,
    plain_transfer_batch,
)

notices_blp = Blueprint("notices", __name__, url_prefix="/notices", description="Payment notices (缴款通知书)")
ledger_blp = Blueprint("ledger", __name__, url_prefix="/ledger", description="The double-entry ledger")
channels_blp = Blueprint("channels", __name__, url_prefix="/channels",
                         description="Notifications from the payment institutions (signed; no token)")


def _cipher() -> PiiCipher:
    cipher = current_app.extensions.get("payment_pii")
    if cipher is None:
        cipher = current_app.extensions["payment_pii"] = PiiCipher.from_kek(load_kek(current_app.config), "payment")
    return cipher


def _department() -> tuple[str, str, str]:
    """``(department code, name, actor)`` of the calling department system.

    :raise Forbidden: the client acts for no configured department (fail closed).
    """
    claims = current_claims()
    client_id = str(claims.get("client_id") or "")
    department = current_app.config["PAYMENT_DEPARTMENTS"].get(client_id)
    if not department:
        raise Forbidden("this client collects for no department", code="not_a_collecting_department")
    return department["code"], department["name"], f"client:{client_id}"


def _own_notice(notice_id: str):
    code, _name, _actor = _department()
    notice = notices.get_notice(get_session(), notice_id)
    if notice.department_code != code:  # the same answer as a missing one: ids are not disclosed
        raise notices.NotFound(f"no notice {notice_id}", code="notice_not_found")
    return notice


@notices_blp.route("")
class Notices(MethodView):
    @notices_blp.arguments(NoticeCreateSchema)
    @notices_blp.response(201, NoticeSchema)
    @notices_blp.alt_response(200, schema=NoticeSchema, description="replay of an earlier request (Idempotency-Key)")
    @notices_blp.doc(security=BEARER, parameters=[idempotency.parameter()])
    @require_token("payment:collect")
    def post(self, body):
        """Issue a payment notice with a payment code (缴款码)."""
        code, name, actor = _department()
        items = tuple(notices.ItemRequest(**item) for item in body.pop("items"))
        request_ = notices.NoticeRequest(items=items, **body)
        session = get_session()
        notice, created = notices.issue_notice(session, _cipher(), request_, department_code=code,
                                               department_name=name, actor=actor,
                                               idempotency_key=idempotency.idempotency_key(), today=date.today())
        session.commit()
        if not created:
            return notice, 200, {"Idempotent-Replayed": "true"}
        g.payment_outbox = True  # the payer's notice: sent after the response
        return notice


@notices_blp.route("/<notice_id>")
class NoticeItem(MethodView):
    @notices_blp.response(200, NoticeSchema)
    @notices_blp.doc(security=BEARER)
    @require_token("payment:collect")
    def get(self, notice_id):
        """One of the calling department's notices."""
        return _own_notice(notice_id)


@notices_blp.route("/<notice_id>/events")
class NoticeEvents(MethodView):
    @notices_blp.response(200, NoticeEventSchema(many=True))
    @notices_blp.doc(security=BEARER)
    @require_token("payment:collect")
    def get(self, notice_id):
        """Every state change of the notice: who, when, why."""
        notice = _own_notice(notice_id)
        return get_session().scalars(select(NoticeEvent).where(NoticeEvent.notice_id == notice.id)
                                     .order_by(NoticeEvent.id))


@notices_blp.route("/<notice_id>/cancel")
class NoticeCancel(MethodView):
    @notices_blp.arguments(CancelSchema)
    @notices_blp.response(200, NoticeSchema)
    @notices_blp.doc(security=BEARER)
    @require_token("payment:collect")
    def post(self, body, notice_id):
        """Cancel an unpaid notice."""
        notice = _own_notice(notice_id)
        notices.cancel_notice(get_session(), notice, actor=_department()[2], reason=body["reason"])
        get_session().commit()
        return notice


@notices_blp.route("/<notice_id>/refunds")
class NoticeRefunds(MethodView):
    @notices_blp.arguments(RefundCreateSchema)
    @notices_blp.response(201, RefundSchema)
    @notices_blp.alt_response(200, schema=RefundSchema, description="replay of an earlier request (Idempotency-Key)")
    @notices_blp.doc(security=BEARER, parameters=[idempotency.parameter(required=True)])
    @require_token("payment:collect")
    def post(self, body, notice_id):
        """Refund part or all of a paid notice (never more than was paid)."""
        notice = _own_notice(notice_id)
        session = get_session()
        refund, created = payments.refund(session, notice, body["amount"], reason=body["reason"],
                                          idempotency_key=idempotency.idempotency_key(required=True),
                                          actor=_department()[2])
        session.commit()
        if not created:
            return refund, 200, {"Idempotent-Replayed": "true"}
        return refund


@notices_blp.route("/lookup")
class NoticeLookup(MethodView):
    @notices_blp.arguments(LookupSchema)
    @notices_blp.response(200, NoticeForPayerSchema)
    @rate_limit("30/minute", scope="notice_lookup")
    def post(self, body):
        """A payer finds a notice by its payment code and their name (no sign-in)."""
        return notices.find_by_payment_code(get_session(), body["payment_code"], body["payer_name"])


@ledger_blp.route("/accounts")
class Accounts(MethodView):
    @ledger_blp.response(200, AccountSchema(many=True))
    @ledger_blp.doc(security=BEARER)
    @require_token("payment:admin")
    def get(self):
        """Every ledger account with its four running sums."""
        return get_session().scalars(select(LedgerAccount).order_by(LedgerAccount.id))


@ledger_blp.route("/transfers")
class Transfers(MethodView):
    @arguments_or(ledger_blp, TransferBatchSchema, plain_transfer_batch)
    @ledger_blp.response(201, TransferBatchResultSchema)
    @ledger_blp.doc(security=BEARER)
    @require_token("payment:admin")
    def post(self, body):
        """Write transfers all-or-nothing; an id already written with the same fields is a replay."""
        results = _ledger_writer().submit([TransferSpec(**spec) for spec in body["transfers"]])
        # Already what TransferBatchResultSchema would dump (tests/payment/test_api.py compares),
        # so it is rendered without the dump, which cost more than the JSON encoding.
        return current_app.json.response({"transfers": [_transfer_json(r) for r in results]}), 201


def _ledger_writer() -> LedgerWriter:
    """The process's group committer when this server runs requests in threads (gunicorn
    gthread: concurrent requests share commits); in a server with one request at a time per
    process (a sync worker) there is nobody to share with, so the request writes inline. The
    database is looked up only when the writer is built, once per process."""
    if not request.environ.get("wsgi.multithread"):
        return app_singleton("payment_ledger_inline", lambda: _build_writer(InlineWriter))
    return app_singleton("payment_ledger_committer", lambda: _build_writer(GroupCommitter))


def _build_writer(kind):
    db = get_db()
    return kind(db.session, write_committed=OneStatementWriter(db.engine))


def _transfer_json(result: TransferResult) -> dict:
    """One written transfer as :class:`~payment.schemas.TransferSchema` dumps it."""
    row = result.transfer
    return {"id": row.id, "debit_account_id": row.debit_account_id, "credit_account_id": row.credit_account_id,
            "amount": row.amount, "code": row.code, "kind": row.kind, "pending_id": row.pending_id,
            "status": row.status, "reference": row.reference, "created_at": row.created_at.isoformat(),
            "created": result.created}


@channels_blp.route("/<channel>/notify")
class ChannelNotify(MethodView):
    @channels_blp.response(200, content_type="text/plain",
                           description="the channel's acknowledgement (204 for WeChat, 'success' for Alipay)")
    def post(self, channel):
        """A payment institution's signed notification: verified, posted once, acknowledged."""
        adapter = current_app.extensions["payment_channels"].get(channel)
        if adapter is None:
            raise notices.NotFound(f"no channel {channel}", code="unknown_channel")
        outcome = callbacks.handle_callback(get_session(), adapter, dict(request.headers), request.get_data(),
                                            now=time.time(), source=request.remote_addr)
        g.payment_outbox = outcome.outcome == "posted"  # the payer's receipt message
        return Response(outcome.ack.body, status=outcome.ack.status, content_type=outcome.ack.content_type)
