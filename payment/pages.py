"""The cashier (收银台): a payer finds a notice by payment code and name, picks a channel and pays.

No sign-in: the payment code and the payer's name are what a notice on paper gives a payer.
The lookup is rate limited per address, answers a wrong code and a wrong name alike, and
shows no payer identifiers. Paying opens an order at the chosen institution and sends the
payer there; the institution sends them back to the result page, which asks the institution
(the query fallback) while its notification has not arrived.

A payer's browser never gets a problem document: whatever fails in these views (an unknown
order, too many lookups, an expired form, the institution down, a bug) answers an error page
in the payer's language, with the status, headers and log line the APIs' problem would have.
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app, g, redirect, render_template, request
from sqlalchemy import select

from common.db import get_session
from common.errors import NotFound
from common.web.pages import html_errors, protect
from common.web.ratelimit import get_limits
from payment import callbacks, notices, payments, receipts, states
from payment.models import Notice, PaymentOrder, Receipt

LOOKUP_LIMIT = "30/minute"
# A problem's code -> what the error page tells the payer (payment/i18n.py); others: error.generic.
ERROR_TEXTS = {"order_not_found": "error.order_not_found", "rate_limited": "error.rate_limited",
               "csrf_failed": "error.csrf_failed", "unknown_channel": "error.unknown_channel",
               "invalid_notice_state": "cashier.not_payable", "channel_unavailable": "error.channel_unavailable",
               "channel_refused_order": "error.channel_unavailable"}
bp = html_errors(protect(Blueprint("payment_pages", __name__, url_prefix="/cashier", template_folder="templates")),
                 back="payment_pages.cashier_form", back_text="error.back", texts=ERROR_TEXTS)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _find(code: str, name: str) -> Notice | None:
    get_limits().check(f"cashier_lookup:{request.remote_addr or 'unknown'}", LOOKUP_LIMIT)
    try:
        return notices.find_by_payment_code(get_session(), code, name)
    except NotFound:
        return None


def _page(**context):
    return render_template("payment/cashier.html", yuan=yuan, channels=current_app.config["PAYMENT_CHANNELS"],
                           **context)


@bp.get("")
def cashier_form():
    return _page()


@bp.post("")
def cashier():
    code, name = request.form.get("payment_code", "").strip(), request.form.get("payer_name", "").strip()
    notice = _find(code, name)
    if notice is None:
        return _page(error="cashier.not_found", code=code, name=name), 404
    return _page(notice=notice, payable=notice.status in states.PAYABLE, code=code, name=name)


@bp.post("/pay")
def pay():
    code, name = request.form.get("payment_code", "").strip(), request.form.get("payer_name", "").strip()
    channel = request.form.get("channel", "")
    notice = _find(code, name)
    if notice is None:
        return _page(error="cashier.not_found", code=code, name=name), 404
    session = get_session()
    order = payments.start_payment(session, notice, channel, actor="payer:cashier")
    session.commit()
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/payment"  # never from the request's Host
    pay_url = current_app.extensions["payment_institution"].open_order(
        channel, order.id, order.amount, notify_url=f"{base}/channels/{channel}/notify",
        return_url=f"{base}/cashier/result/{order.id}")
    return redirect(pay_url)


@bp.get("/result/<order_id>")
def result(order_id: str):
    session = get_session()
    order = session.get(PaymentOrder, order_id)
    if order is None:
        raise NotFound("no such order", code="order_not_found")
    if order.status == "open":  # the notification may be on its way, or lost: ask the institution
        adapter = current_app.extensions["payment_channels"][order.channel]
        outcome = callbacks.resolve_by_query(session, adapter, current_app.extensions["payment_institution"],
                                             order.id, now=time.time())
        g.payment_outbox = outcome is not None and outcome.outcome == "posted"
        session.expire_all()
        order = session.get(PaymentOrder, order_id)
    notice = session.get(Notice, order.notice_id)
    receipt = session.scalar(select(Receipt).where(Receipt.notice_id == notice.id)) if order.status == "paid" else None
    return render_template("payment/result.html", yuan=yuan, order=order, notice=notice, receipt=receipt)


@bp.get("/receipt")
def receipt():
    """Anyone holding a receipt checks it: the stored document and the seal node's verdict on its seal."""
    code, number, check = (request.args.get(k, "").strip() for k in ("code", "number", "check_code"))
    context = {"code": code, "number": number, "check_code": check, "yuan": yuan}
    if not (code and number and check):
        return render_template("payment/receipt.html", **context)
    get_limits().check(f"receipt_check:{request.remote_addr or 'unknown'}", LOOKUP_LIMIT)
    try:
        row = receipts.find_receipt(get_session(), code, number, check)
    except NotFound:
        return render_template("payment/receipt.html", error="receipt.not_found", **context), 404
    verdict = None
    if row.status == "sealed":
        verdict = current_app.extensions["payment_sealer"].verify(row.signature, row.digest)
    return render_template("payment/receipt.html", document=receipts.receipt_fields(row), status=row.status,
                           check=verdict, **context)
