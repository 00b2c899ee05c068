"""An Alipay-like channel (支付宝 asynchronous notification shape).

Notifications are form posts; ``sign`` is base64 SHA256withRSA ("RSA2") by Alipay's key over
the other parameters (``sign`` and ``sign_type`` left out) sorted by name and joined as
``k=v&k=v``. Amounts are yuan strings ("45.50"). Acknowledged with the literal ``success``;
anything else is retried (8 times over 25 hours).
"""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payment.channels.base import TIMESTAMP_WINDOW_S, Ack, CallbackRejected, PaidNotification

SHANGHAI = ZoneInfo("Asia/Shanghai")


def content_to_sign(params: dict[str, str]) -> bytes:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type") and params[k]
                    ).encode()


def sign(private_key: rsa.RSAPrivateKey, params: dict[str, str]) -> str:
    """The institution's side (the simulator)."""
    return base64.b64encode(private_key.sign(content_to_sign(params), padding.PKCS1v15(), hashes.SHA256())).decode()


def fen_of(yuan: str) -> int:
    """``"45.50"`` -> 4550. :raise CallbackRejected: not a positive amount with at most 2 decimals."""
    try:
        value = Decimal(yuan)
    except InvalidOperation:
        raise CallbackRejected(f"amount {yuan!r} is not a number", code="callback_bad_amount") from None
    if not value.is_finite():
        raise CallbackRejected(f"amount {yuan!r} is not a number", code="callback_bad_amount")
    fen = value * 100
    if value <= 0 or fen != fen.to_integral_value():
        raise CallbackRejected(f"amount {yuan!r} is not a positive amount in fen", code="callback_bad_amount")
    return int(fen)


def yuan_of(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


class AlipayChannel:
    name = "alipay"

    def __init__(self, *, alipay_public_key: bytes, app_id: str) -> None:
        self._key = serialization.load_pem_public_key(alipay_public_key)
        self.app_id = app_id

    def parse_callback(self, headers: dict[str, str], body: bytes, now: float) -> PaidNotification:
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
            signature = base64.b64decode(params["sign"], validate=True)
        except (KeyError, ValueError, UnicodeDecodeError):
            raise CallbackRejected("the notification does not parse or is unsigned", code="callback_unsigned") from None
        if params.get("sign_type") != "RSA2":
            raise CallbackRejected("only RSA2 signatures are accepted", code="callback_bad_signature")
        try:
            self._key.verify(signature, content_to_sign(params), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise CallbackRejected("the signature does not verify", code="callback_bad_signature") from None
        try:
            notify_time = datetime.strptime(params["notify_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
            paid_at = datetime.strptime(params["gmt_payment"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
            if params["app_id"] != self.app_id:
                raise CallbackRejected("a notification for another app", code="callback_not_paid")
            if params["trade_status"] not in ("TRADE_SUCCESS", "TRADE_FINISHED"):
                raise CallbackRejected(f"trade status {params['trade_status']}", code="callback_not_paid")
            if abs(now - notify_time.timestamp()) > TIMESTAMP_WINDOW_S:
                raise CallbackRejected("the notification time is outside the accepted window", code="callback_stale")
            return PaidNotification(order_id=params["out_trade_no"], channel_transaction_id=params["trade_no"],
                                    amount=fen_of(params["total_amount"]), paid_at=paid_at,
                                    notification_id=params["notify_id"])
        except KeyError as exc:
            raise CallbackRejected(f"parameter {exc.args[0]} is missing", code="callback_malformed") from None
        except ValueError:
            raise CallbackRejected("a time does not parse", code="callback_malformed") from None

    def ack(self) -> Ack:
        return Ack(200, b"success", "text/plain")

    def nack(self, reason: str) -> Ack:
        return Ack(200, b"fail", "text/plain")
