"""Every setting the payment node reads, declared once with its default (``XSN_<KEY>`` overrides)."""

from __future__ import annotations

from typing import Any

SETTINGS: dict[str, Any] = {
    # Which collecting department (执收单位) a client-credentials client acts for:
    # client_id -> {"code": GB 32100 credit code, "name": ...}. A caller not listed cannot
    # issue notices (fail closed). The embedded run's demo department system is listed.
    "PAYMENT_DEPARTMENTS": {
        "xsn-dept-market": {"code": "11610100MB29613528", "name": "西安市市场监督管理局"},
    },
    # The channels a notice can be paid through (each has its ledger accounts).
    "PAYMENT_CHANNELS": ["wechat", "alipay", "bank"],
    # The institutions (production sets keys and URLs; embedded: the simulator's, under var/).
    "PAYMENT_WECHAT_MERCHANT_ID": "1900000109",
    "PAYMENT_WECHAT_PLATFORM_KEYS": None,  # {serial: PEM public key}, several during a rotation
    "PAYMENT_WECHAT_API_V3_KEY": None,  # hex, 32 bytes
    "PAYMENT_ALIPAY_APP_ID": "2021000000000001",
    "PAYMENT_ALIPAY_PUBLIC_KEY": None,  # PEM
    "PAYMENT_BANK_SECRET": None,  # hex HMAC-SM3 key shared with the partner bank
    "PAYMENT_CHANNEL_SIM_URL": "http://127.0.0.1:8009",
    # This node's client at identity (seal node, message hub); the secret comes from
    # XSN_PAYMENT_CLIENT_SECRET, or in the embedded setup from var/clients.json (identity's seed).
    "PAYMENT_CLIENT_ID": "xsn-payment",
    "PAYMENT_CLIENT_SECRET": None,
    # "http" (the seal node, the message hub) or "memory" (in-process: tests, a node on its own)
    "PAYMENT_SEAL_CLIENT": "http",
    "PAYMENT_NOTIFIER": "hub",
    # Expiry of unpaid notices past their due date, by the beat task payment.expire_notices.
    "PAYMENT_EXPIRY_INTERVAL": 3600.0,
    # Orders left open (the payer walked away from the channel's page) are resolved with the
    # institution once this old, in seconds, by the beat task payment.close_stale_orders
    # (stale_orders.py), which runs every PAYMENT_STALE_ORDER_INTERVAL seconds.
    "PAYMENT_ORDER_TIMEOUT": 1800.0,
    "PAYMENT_STALE_ORDER_INTERVAL": 300.0,
    # Sealing pending e-receipts through the seal node's batch API, by payment.seal_receipts.
    "PAYMENT_RECEIPT_INTERVAL": 5.0,
}
