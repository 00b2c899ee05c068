"""Finance APIs of the payment node: reconciliation, settlement and e-receipts (thin views).

``payment:admin`` imports statements, resolves differences and settles days; receipts are
verified by anyone holding one (code, number and check code), without a token.
"""

from __future__ import annotations

from datetime import date, datetime

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from common.db import get_session
from common.errors import NotFound, ValidationFailed
from common.web.auth import BEARER, current_claims, require_token
from common.web.ratelimit import rate_limit
from payment import receipts, reconciliation, settlement
from payment.models import Statement
from payment.payments import CHANNELS
from payment.schemas import (
    DifferenceSchema,
    ReceiptQuerySchema,
    ReceiptSchema,
    ReconReportSchema,
    ResolveSchema,
    SettlementSchema,
)

recon_blp = Blueprint("reconciliation", __name__, url_prefix="/reconciliation",
                      description="Daily reconciliation (对账) and settlement (清算)")
receipts_blp = Blueprint("receipts", __name__, url_prefix="/receipts", description="Fiscal e-receipts (财政电子票据)")


def _actor() -> str:
    claims = current_claims()
    return f"{'client' if claims.get('client_id') == claims.get('sub') else 'person'}:{claims.get('sub')}"


def _day_and_channel(channel: str, day: str) -> date:
    if channel not in CHANNELS:
        raise NotFound(f"no channel {channel}", code="unknown_channel")
    try:
        return date.fromisoformat(day)
    except ValueError:
        raise ValidationFailed("the day is YYYY-MM-DD", code="invalid_day") from None


def _report(session, statement: Statement) -> dict:
    return {"statement": statement, "differences": reconciliation.differences(session, statement)}


@recon_blp.route("/<channel>/<day>")
class ChannelDay(MethodView):
    @recon_blp.response(200, ReconReportSchema)
    @recon_blp.doc(security=BEARER)
    @require_token("payment:admin")
    def get(self, channel, day):
        """The day's reconciliation report for a channel: the statement and every difference."""
        wanted = _day_and_channel(channel, day)
        session = get_session()
        statement = session.scalar(select(Statement).where(Statement.channel == channel, Statement.day == wanted))
        if statement is None:
            raise NotFound(f"no {channel} statement imported for {day}", code="statement_not_found")
        return _report(session, statement)

    @recon_blp.response(201, ReconReportSchema)
    @recon_blp.doc(security=BEARER, parameters=[{"in": "header", "name": "X-Statement-SHA256",
                                                   "schema": {"type": "string"}}],
                   requestBody={"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                   "format": "binary"}}}})
    @require_token("payment:admin")
    def post(self, channel, day):
        """Import an uploaded statement file (its SHA-256 is checked when given) and match it."""
        wanted = _day_and_channel(channel, day)
        session = get_session()
        statement = reconciliation.import_statement(session, channel, wanted, request.get_data(), actor=_actor(),
                                                    expected_sha256=request.headers.get("X-Statement-SHA256"))
        session.commit()
        return _report(session, statement)


@recon_blp.route("/<channel>/<day>/fetch")
class ChannelDayFetch(MethodView):
    @recon_blp.response(201, ReconReportSchema)
    @recon_blp.doc(security=BEARER)
    @require_token("payment:admin")
    def post(self, channel, day):
        """Fetch the day's statement from the institution, check its published digest, and match it."""
        wanted = _day_and_channel(channel, day)
        data, digest = current_app.extensions["payment_institution"].statement(channel, day)
        if digest is None:
            raise ValidationFailed("the institution published no digest for the statement",
                                   code="statement_digest_missing")
        session = get_session()
        statement = reconciliation.import_statement(session, channel, wanted, data, actor=_actor(),
                                                    expected_sha256=digest)
        session.commit()
        return _report(session, statement)


@recon_blp.route("/differences/<difference_id>/resolve")
class Resolve(MethodView):
    @recon_blp.arguments(ResolveSchema)
    @recon_blp.response(200, DifferenceSchema)
    @recon_blp.doc(security=BEARER)
    @require_token("payment:admin")
    def post(self, body, difference_id):
        """Resolve a difference by a recorded action (``post`` after the institution confirms, or
        ``acknowledge`` with a reason)."""
        session = get_session()
        diff = session.get(reconciliation.ReconDifference, difference_id)
        if diff is None:
            raise NotFound(f"no difference {difference_id}", code="difference_not_found")
        statement = session.get(Statement, diff.statement_id)
        diff = reconciliation.resolve(session, difference_id, body["action"], actor=_actor(), reason=body["reason"],
                                      adapter=current_app.extensions["payment_channels"][statement.channel],
                                      institution=current_app.extensions["payment_institution"])
        session.commit()
        g.payment_outbox = body["action"] == "post"
        return diff


@recon_blp.route("/<channel>/<day>/settle")
class Settle(MethodView):
    @recon_blp.response(201, SettlementSchema(many=True))
    @recon_blp.doc(security=BEARER)
    @require_token("payment:admin")
    def post(self, channel, day):
        """Settle the day's collections through a channel to each department's treasury account."""
        wanted = _day_and_channel(channel, day)
        session = get_session()
        results = settlement.settle_day(session, channel, wanted,
                                        today=datetime.now(reconciliation.SHANGHAI).date())
        session.commit()
        return [{"transfer_id": r.transfer.id, "department_code": r.transfer.debit_account_id.split(":", 1)[1],
                 "amount": r.transfer.amount, "created": r.created} for r in results]


@receipts_blp.route("/verify")
class ReceiptVerify(MethodView):
    @receipts_blp.arguments(ReceiptQuerySchema, location="query")
    @receipts_blp.response(200, ReceiptSchema)
    @rate_limit("60/minute", scope="receipt_verify")
    def get(self, query):
        """Verify an e-receipt by its code, number and 6-digit check code (no sign-in)."""
        receipt = receipts.find_receipt(get_session(), query["code"], query["number"], query["check_code"])
        return {**{c: getattr(receipt, c) for c in ("code", "number", "status", "digest", "seal_id", "signature",
                                                    "issued_at", "sealed_at")},
                "document": receipts.receipt_fields(receipt)}
