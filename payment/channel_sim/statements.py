"""Daily statements (对账单) as the institutions write them.

- WeChat: UTF-8 CSV, every field prefixed with a back-tick, amounts in yuan, a summary header
  and line at the end.
- Alipay: a zip holding one GBK-encoded CSV, amounts in yuan.
- Bank: UTF-8 CSV, amounts in fen.
"""

from __future__ import annotations

import csv
import io
import zipfile
from zoneinfo import ZoneInfo

from payment.channel_sim.notifications import SimOrder
from payment.channels.alipay import yuan_of
from payment.channels.statements import ALIPAY_HEADER, BANK_HEADER, WECHAT_HEADER

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _time(order: SimOrder) -> str:
    return order.paid_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def statement_file(channel: str, orders: list[SimOrder], *, merchant_id: str) -> tuple[bytes, str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if channel == "wechat":
        writer.writerow(WECHAT_HEADER)
        for o in orders:
            writer.writerow([f"`{v}" for v in (_time(o), merchant_id, o.transaction_id, o.order_id, "SUCCESS",
                                              yuan_of(o.amount))])
        writer.writerow(["总交易单数", "应结订单总金额"])
        writer.writerow([f"`{len(orders)}", f"`{yuan_of(sum(o.amount for o in orders))}"])
        return out.getvalue().encode("utf-8"), "text/csv; charset=utf-8"
    if channel == "alipay":
        writer.writerow(ALIPAY_HEADER)
        for o in orders:
            writer.writerow([o.transaction_id, o.order_id, "交易", _time(o), yuan_of(o.amount)])
        blob = io.BytesIO()
        with zipfile.ZipFile(blob, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("statement_detail.csv", out.getvalue().encode("gbk"))
        return blob.getvalue(), "application/zip"
    writer.writerow(BANK_HEADER)
    for o in orders:
        writer.writerow([o.transaction_id, o.order_id, o.amount, o.paid_at.isoformat()])
    return out.getvalue().encode("utf-8"), "text/csv; charset=utf-8"
