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
    # Expiry of unpaid notices past their due date, by the beat task payment.expire_notices.
    "PAYMENT_EXPIRY_INTERVAL": 3600.0,
}
