"""The bank counter channel (银行柜台/网银): a partner bank reports payments taken at its counters.

No public standard exists for this notice, so it is ours and documented here: a JSON body
``{"notify_id", "order_id", "bank_txn_id", "amount" (fen), "paid_at" (ISO 8601)}`` with headers
``X-Bank-Timestamp`` (unix seconds) and ``X-Bank-Signature`` = hex HMAC-SM3 under the shared
secret over ``timestamp + "\\n" + body``. Acknowledged with 200 ``{"result": "OK"}``.
"""

from __future__ import annotations

import json
from datetime import datetime

from common.crypto.gm import hmac_sm3, hmac_sm3_verify
from payment.channels.base import TIMESTAMP_WINDOW_S, Ack, CallbackRejected, PaidNotification


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac_sm3(secret, timestamp.encode() + b"\n" + body).hex()


class BankChannel:
    name = "bank"

    def __init__(self, *, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the bank's shared secret is at least 16 bytes")
        self._secret = secret

    def parse_callback(self, headers: dict[str, str], body: bytes, now: float) -> PaidNotification:
        headers = {k.lower(): v for k, v in headers.items()}
        timestamp = headers.get("x-bank-timestamp", "")
        try:
            mac = bytes.fromhex(headers.get("x-bank-signature", ""))
        except ValueError:
            mac = b""
        if not mac or not timestamp.isdigit():
            raise CallbackRejected("signature headers missing or malformed", code="callback_unsigned")
        if abs(now - int(timestamp)) > TIMESTAMP_WINDOW_S:
            raise CallbackRejected("the timestamp is outside the accepted window", code="callback_stale")
        if not hmac_sm3_verify(self._secret, timestamp.encode() + b"\n" + body, mac):
            raise CallbackRejected("the signature does not verify", code="callback_bad_signature")
        try:
            data = json.loads(body)
            amount = data["amount"]
            if type(amount) is not int or amount <= 0:
                raise CallbackRejected("the amount is not a positive number of fen", code="callback_bad_amount")
            return PaidNotification(order_id=str(data["order_id"]), channel_transaction_id=str(data["bank_txn_id"]),
                                    amount=amount, paid_at=datetime.fromisoformat(data["paid_at"]),
                                    notification_id=str(data["notify_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CallbackRejected):
                raise
            raise CallbackRejected("the notification does not parse", code="callback_malformed") from None

    def ack(self) -> Ack:
        return Ack(200, b'{"result": "OK"}', "application/json")

    def nack(self, reason: str) -> Ack:
        return Ack(500, json.dumps({"result": "FAIL", "reason": reason}).encode(), "application/json")
