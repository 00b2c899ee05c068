"""A WeChat-Pay-v3-like channel (微信支付 API v3 shape).

Notifications: headers ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``, ``Wechatpay-Signature``
(base64 SHA256withRSA by the platform key over ``timestamp\\nnonce\\nbody\\n``) and
``Wechatpay-Serial`` (which platform key); the body's ``resource`` is AES-256-GCM encrypted
under the merchant's API v3 key, with ``associated_data`` and ``nonce`` beside the ciphertext.
Acknowledged with 204; anything else makes the institution retry on its ladder
(15s, 15s, 30s, 3m, 10m, ... STANDARDS.md §7).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from payment.channels.base import TIMESTAMP_WINDOW_S, Ack, CallbackRejected, PaidNotification


def signing_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """The institution's side (the simulator): SHA256withRSA, base64."""
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def encrypt_resource(api_v3_key: bytes, plaintext: dict, nonce: str, associated_data: str = "transaction") -> dict:
    """The institution's side: the ``resource`` object of a notification."""
    blob = AESGCM(api_v3_key).encrypt(nonce.encode(), json.dumps(plaintext).encode(), associated_data.encode())
    return {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(blob).decode(), "associated_data": associated_data, "nonce": nonce}


class WechatChannel:
    name = "wechat"

    def __init__(self, *, platform_keys: dict[str, bytes], api_v3_key: bytes, merchant_id: str) -> None:
        """``platform_keys``: serial -> PEM public key of the platform (several during rotation)."""
        if len(api_v3_key) != 32:
            raise ValueError("the API v3 key is 32 bytes (AES-256)")
        self._keys = {serial: serialization.load_pem_public_key(pem) for serial, pem in platform_keys.items()}
        self._aead = AESGCM(api_v3_key)
        self.merchant_id = merchant_id

    def _verify_signature(self, headers: dict[str, str], body: bytes, now: float) -> None:
        try:
            timestamp, nonce = headers["wechatpay-timestamp"], headers["wechatpay-nonce"]
            signature = base64.b64decode(headers["wechatpay-signature"], validate=True)
            serial = headers["wechatpay-serial"]
        except (KeyError, ValueError):
            raise CallbackRejected("signature headers missing or malformed", code="callback_unsigned") from None
        key = self._keys.get(serial)
        if key is None:
            raise CallbackRejected(f"unknown platform key serial {serial!r}", code="callback_unknown_key")
        if not timestamp.isdigit() or abs(now - int(timestamp)) > TIMESTAMP_WINDOW_S:
            raise CallbackRejected("the timestamp is outside the accepted window", code="callback_stale")
        try:
            key.verify(signature, signing_message(timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise CallbackRejected("the signature does not verify", code="callback_bad_signature") from None

    def _decrypt(self, resource: dict) -> dict:
        try:
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise ValueError("algorithm")
            plaintext = self._aead.decrypt(resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
                                           resource.get("associated_data", "").encode())
            return json.loads(plaintext)
        except (InvalidTag, KeyError, ValueError, TypeError, AttributeError):
            raise CallbackRejected("the resource does not decrypt", code="callback_bad_resource") from None

    def parse_callback(self, headers: dict[str, str], body: bytes, now: float) -> PaidNotification:
        headers = {k.lower(): v for k, v in headers.items()}
        self._verify_signature(headers, body, now)
        try:
            envelope = json.loads(body)
            if envelope["event_type"] != "TRANSACTION.SUCCESS":
                raise CallbackRejected(f"event {envelope['event_type']} is not a payment", code="callback_not_paid")
            transaction = self._decrypt(envelope["resource"])
            if transaction.get("trade_state") != "SUCCESS" or transaction.get("mchid") != self.merchant_id:
                raise CallbackRejected("not a successful payment to this merchant", code="callback_not_paid")
            amount = transaction["amount"]["total"]
            if type(amount) is not int or amount <= 0 or transaction["amount"].get("currency", "CNY") != "CNY":
                raise CallbackRejected("the amount is not a positive number of fen", code="callback_bad_amount")
            return PaidNotification(order_id=str(transaction["out_trade_no"]),
                                    channel_transaction_id=str(transaction["transaction_id"]), amount=amount,
                                    paid_at=datetime.fromisoformat(transaction["success_time"]),
                                    notification_id=str(envelope["id"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, CallbackRejected):
                raise
            raise CallbackRejected("the notification does not parse", code="callback_malformed") from None

    def ack(self) -> Ack:
        return Ack(204, b"", "text/plain")

    def nack(self, reason: str) -> Ack:
        return Ack(500, json.dumps({"code": "FAIL", "message": reason}).encode(), "application/json")
