"""The configured channel adapters of a payment app (built once per process)."""

from __future__ import annotations

from typing import Any

from payment.channels.alipay import AlipayChannel
from payment.channels.bank import BankChannel
from payment.channels.base import ChannelAdapter
from payment.channels.wechat import WechatChannel


def build_channels(config: dict[str, Any], *, embedded_keys=None) -> dict[str, ChannelAdapter]:
    """Adapters from ``PAYMENT_*`` settings, or, in the embedded run, from the public halves of
    the simulator's keys (``embedded_keys``: :class:`payment.channel_sim.keys.InstitutionKeys`).

    :raise RuntimeError: production without the institutions' keys (fail closed: an adapter
        that cannot verify must not exist).
    """
    wechat_keys = config.get("PAYMENT_WECHAT_PLATFORM_KEYS")
    api_v3 = config.get("PAYMENT_WECHAT_API_V3_KEY")
    alipay_key = config.get("PAYMENT_ALIPAY_PUBLIC_KEY")
    bank_secret = config.get("PAYMENT_BANK_SECRET")
    if not (wechat_keys and api_v3 and alipay_key and bank_secret):
        if config.get("ENV") == "production" or embedded_keys is None:
            raise RuntimeError("XSN_PAYMENT_WECHAT_PLATFORM_KEYS, _WECHAT_API_V3_KEY, _ALIPAY_PUBLIC_KEY and "
                               "_BANK_SECRET must be set in production")
        keys = embedded_keys
        wechat_keys = {keys.wechat_serial: keys.public_pem(keys.wechat_private)}
        api_v3, bank_secret = keys.wechat_api_v3_key.hex(), keys.bank_secret.hex()
        alipay_key = keys.public_pem(keys.alipay_private)
    wechat_keys = {serial: pem.encode() if isinstance(pem, str) else pem for serial, pem in wechat_keys.items()}
    return {
        "wechat": WechatChannel(platform_keys=wechat_keys, api_v3_key=bytes.fromhex(api_v3),
                                merchant_id=config["PAYMENT_WECHAT_MERCHANT_ID"]),
        "alipay": AlipayChannel(alipay_public_key=alipay_key.encode() if isinstance(alipay_key, str) else alipay_key,
                                app_id=config["PAYMENT_ALIPAY_APP_ID"]),
        "bank": BankChannel(secret=bytes.fromhex(bank_secret)),
    }
