"""What the simulated institutions send: signed notifications in each channel's format."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from payment.channel_sim.keys import WECHAT_SERIAL, InstitutionKeys
from payment.channels import alipay, bank, wechat

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class SimOrder:
    channel: str
    order_id: str
    amount: int
    transaction_id: str
    paid_at: datetime


@dataclass(frozen=True)
class SignedRequest:
    headers: dict[str, str]
    body: bytes


def wechat_notification(keys: InstitutionKeys, order: SimOrder, merchant_id: str) -> SignedRequest:
    transaction = {"mchid": merchant_id, "appid": "wx-sim", "out_trade_no": order.order_id,
                   "transaction_id": order.transaction_id, "trade_type": "NATIVE", "trade_state": "SUCCESS",
                   "success_time": order.paid_at.astimezone(SHANGHAI).isoformat(timespec="seconds"),
                   "amount": {"total": order.amount, "payer_total": order.amount, "currency": "CNY"}}
    envelope = {"id": f"EV-{secrets.token_hex(8)}", "create_time": datetime.now(SHANGHAI).isoformat(timespec="seconds"),
                "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
                "resource": wechat.encrypt_resource(keys.wechat_api_v3_key, transaction, secrets.token_hex(6))}
    body = json.dumps(envelope, ensure_ascii=False).encode()
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    signature = wechat.sign(keys.wechat_private, wechat.signing_message(timestamp, nonce, body))
    return SignedRequest({"Content-Type": "application/json", "Wechatpay-Timestamp": timestamp,
                          "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature,
                          "Wechatpay-Serial": WECHAT_SERIAL}, body)


def alipay_notification(keys: InstitutionKeys, order: SimOrder, app_id: str) -> SignedRequest:
    params = {"notify_time": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
              "notify_type": "trade_status_sync", "notify_id": secrets.token_hex(12), "app_id": app_id,
              "charset": "utf-8", "version": "1.0", "trade_no": order.transaction_id,
              "out_trade_no": order.order_id, "trade_status": "TRADE_SUCCESS",
              "total_amount": alipay.yuan_of(order.amount),
              "gmt_payment": order.paid_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")}
    params["sign_type"] = "RSA2"
    params["sign"] = alipay.sign(keys.alipay_private, params)
    return SignedRequest({"Content-Type": "application/x-www-form-urlencoded"}, urlencode(params).encode())


def bank_notification(keys: InstitutionKeys, order: SimOrder) -> SignedRequest:
    body = json.dumps({"notify_id": secrets.token_hex(8), "order_id": order.order_id,
                       "bank_txn_id": order.transaction_id, "amount": order.amount,
                       "paid_at": order.paid_at.astimezone(UTC).isoformat()}).encode()
    timestamp = str(int(time.time()))
    return SignedRequest({"Content-Type": "application/json", "X-Bank-Timestamp": timestamp,
                          "X-Bank-Signature": bank.sign(keys.bank_secret, timestamp, body)}, body)


def notification(keys: InstitutionKeys, order: SimOrder, *, merchant_id: str, app_id: str) -> SignedRequest:
    if order.channel == "wechat":
        return wechat_notification(keys, order, merchant_id)
    if order.channel == "alipay":
        return alipay_notification(keys, order, app_id)
    return bank_notification(keys, order)
