"""Reading each channel's daily statement (对账单) into lines the reconciliation can match.

:func:`parse_statement` refuses a file it cannot read whole (no partial statements: a line
silently skipped would be a payment silently unreconciled).
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass

from common.errors import Problem
from payment.channels.alipay import fen_of

MAX_STATEMENT_BYTES = 20 * 1024 * 1024
# The header rows each institution writes (the simulator writes the same ones).
WECHAT_HEADER = ["交易时间", "商户号", "微信订单号", "商户订单号", "交易状态", "应结订单金额"]
ALIPAY_HEADER = ["支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）"]
BANK_HEADER = ["bank_txn_id", "order_id", "amount_fen", "paid_at"]


class MalformedStatement(Problem):
    status, code, title = 422, "malformed_statement", "The statement file cannot be read"


@dataclass(frozen=True)
class StatementLine:
    line: int
    order_id: str
    channel_transaction_id: str
    amount: int  # fen


def _rows(text: str, header: list[str]) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lstrip("`") for c in rows[0]] != header:
        raise MalformedStatement(f"the header is not {','.join(header)}")
    return rows[1:]


def _amount(raw: str, line: int, yuan: bool) -> int:
    try:
        if yuan:
            return fen_of(raw)
        value = int(raw)
        if value <= 0:
            raise ValueError
        return value
    except (ValueError, Problem):
        raise MalformedStatement(f"line {line}: amount {raw!r} does not parse") from None


def parse_statement(channel: str, data: bytes) -> list[StatementLine]:
    """:raise MalformedStatement: wrong format, header, encoding, size, or any line that does not parse."""
    if len(data) > MAX_STATEMENT_BYTES:
        raise MalformedStatement("the statement is too large")
    try:
        if channel == "wechat":
            rows = _rows(data.decode("utf-8"), WECHAT_HEADER)
            body = rows[:-2] if len(rows) >= 2 and rows[-2][:1] == ["总交易单数"] else None
            if body is None:
                raise MalformedStatement("the summary lines are missing")
            lines = [StatementLine(n, r[3].lstrip("`"), r[2].lstrip("`"), _amount(r[5].lstrip("`"), n, True))
                     for n, r in enumerate(body, start=2) if _width(r, 6, n)]
            raw_total = rows[-1][1].lstrip("`") if len(rows[-1]) == 2 else None
            # A day without payments is a statement too: no lines, a total of 0.00.
            total = (-1 if raw_total is None else 0 if raw_total == "0.00" and not lines
                     else _amount(raw_total, len(rows) + 1, True))
            if int(rows[-1][0].lstrip("`")) != len(lines) or total != sum(x.amount for x in lines):
                raise MalformedStatement("the summary does not match the lines")
            return lines
        if channel == "alipay":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = archive.namelist()
                if len(names) != 1 or archive.getinfo(names[0]).file_size > MAX_STATEMENT_BYTES:
                    raise MalformedStatement("the archive must hold one statement file")
                text = archive.read(names[0]).decode("gbk")
            rows = _rows(text, ALIPAY_HEADER)
            return [StatementLine(n, r[1], r[0], _amount(r[4], n, True)) for n, r in enumerate(rows, start=2)
                    if _width(r, 5, n)]
        if channel == "bank":
            rows = _rows(data.decode("utf-8"), BANK_HEADER)
            return [StatementLine(n, r[1], r[0], _amount(r[2], n, False)) for n, r in enumerate(rows, start=2)
                    if _width(r, 4, n)]
    except (UnicodeDecodeError, zipfile.BadZipFile, csv.Error, ValueError, IndexError) as exc:
        raise MalformedStatement(f"the statement does not parse ({type(exc).__name__})") from None
    raise MalformedStatement(f"unknown channel {channel!r}")


def _width(row: list[str], width: int, line: int) -> bool:
    if len(row) != width:
        raise MalformedStatement(f"line {line} has {len(row)} fields, not {width}")
    return True
