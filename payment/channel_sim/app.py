"""The simulator's HTTP face: the institutions' order, pay, query and statement endpoints.

State is a small SQLite file under ``var/channel-sim/`` (stdlib ``sqlite3``: the simulator is
an outside party, not a service of ours, and needs none of the services' machinery), so a
restarted simulator still knows what it was paid and still owes notifications.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
from datetime import UTC, date, datetime
from pathlib import Path

from flask import Flask, Response, abort, jsonify, redirect, render_template_string, request

from payment.channel_sim.delivery import Deliverer
from payment.channel_sim.keys import institution_keys
from payment.channel_sim.notifications import SimOrder, notification
from payment.channel_sim.statements import SHANGHAI, statement_file
from payment.payments import CHANNELS

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
  channel TEXT NOT NULL, order_id TEXT NOT NULL, amount INTEGER NOT NULL, notify_url TEXT NOT NULL,
  return_url TEXT, status TEXT NOT NULL DEFAULT 'open', transaction_id TEXT, paid_at TEXT,
  PRIMARY KEY (channel, order_id));
"""

PAY_PAGE = """<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>{{ names[channel] }} 模拟支付</title>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">
<h1>{{ names[channel] }}（模拟）</h1>
<p>商户订单号 <code>{{ order.order_id }}</code></p>
<p>应付金额 <strong id="amount">¥{{ "%d.%02d"|format(order.amount // 100, order.amount % 100) }}</strong></p>
{% if order.status == "paid" %}<p id="status">已支付</p>{% elif order.status == "closed" %}<p id="status">订单已关闭</p>
{% else %}
<form method="post"><button id="pay" type="submit">确认支付 / Pay</button></form>{% endif %}
</body></html>"""
NAMES = {"wechat": "微信支付", "alipay": "支付宝", "bank": "银行柜台"}


def create_sim_app(var_dir: str | Path, *, merchant_id: str, app_id: str, retry_scale: float = 1.0) -> Flask:
    app = Flask("payment.channel_sim")
    root = Path(var_dir) / "channel-sim"
    root.mkdir(parents=True, exist_ok=True)
    db_path = root / "sim.db"
    keys = institution_keys(var_dir)
    lock = threading.Lock()

    def db() -> sqlite3.Connection:
        conn = sqlite3.connect(db_path, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    with db() as conn:
        conn.executescript(SCHEMA)

    def sim_order(row: sqlite3.Row) -> SimOrder:
        return SimOrder(row["channel"], row["order_id"], row["amount"], row["transaction_id"],
                        datetime.fromisoformat(row["paid_at"]))

    def sign(order: SimOrder):
        return notification(keys, order, merchant_id=merchant_id, app_id=app_id)

    deliverer = Deliverer(sign, retry_scale=retry_scale)
    app.extensions["deliverer"] = deliverer

    def load(channel: str, order_id: str) -> sqlite3.Row:
        if channel not in CHANNELS:
            abort(404)
        with db() as conn:
            row = conn.execute("SELECT * FROM orders WHERE channel = ? AND order_id = ?",
                               (channel, order_id)).fetchone()
        if row is None:
            abort(404)
        return row

    @app.post("/<channel>/orders")
    def create_order(channel: str):
        """The merchant's server opens an order (WeChat Native / Alipay page pay / bank slip)."""
        body = request.get_json(force=True)
        if channel not in CHANNELS or type(body.get("amount")) is not int or body["amount"] <= 0:
            return jsonify(code="PARAM_ERROR", message="bad channel or amount"), 400
        with lock, db() as conn:
            conn.execute("INSERT OR IGNORE INTO orders (channel, order_id, amount, notify_url, return_url) "
                         "VALUES (?, ?, ?, ?, ?)", (channel, body["order_id"], body["amount"], body["notify_url"],
                                                    body.get("return_url")))
        return jsonify(pay_url=f"{request.host_url.rstrip('/')}/{channel}/pay/{body['order_id']}"), 201

    @app.route("/<channel>/pay/<order_id>", methods=["GET", "POST"])
    def pay(channel: str, order_id: str):
        """The payer's page at the institution. POST pays; test options come as query parameters:
        ``duplicates`` (extra deliveries), ``drop=1`` (never notify: the query fallback must find
        it), ``delay`` (seconds before the first delivery)."""
        row = load(channel, order_id)
        if request.method == "GET":
            return render_template_string(PAY_PAGE, channel=channel, order=row, names=NAMES)
        with lock, db() as conn:  # only an open order is paid: a closed one takes no payment
            conn.execute("UPDATE orders SET status = 'paid', transaction_id = ?, paid_at = ? "
                         "WHERE channel = ? AND order_id = ? AND status = 'open'",
                         (f"{channel[:2].upper()}{secrets.token_hex(10)}", datetime.now(UTC).isoformat(),
                          channel, order_id))
        row = load(channel, order_id)
        if row["status"] == "closed":
            return jsonify(code="ORDER_CLOSED", message="the order was closed"), 409
        if request.args.get("drop") != "1":
            deliverer.schedule(sim_order(row), row["notify_url"], copies=1 + int(request.args.get("duplicates", 0)),
                               delay=float(request.args.get("delay", 0)))
        if row["return_url"] and request.args.get("redirect", "1") == "1":
            return redirect(row["return_url"])
        return jsonify(status="paid", transaction_id=row["transaction_id"])

    @app.post("/<channel>/orders/<order_id>/close")
    def close(channel: str, order_id: str):
        """Close-order: an unpaid order takes no payment afterwards; a paid one answers ORDERPAID."""
        load(channel, order_id)
        with lock, db() as conn:
            closed = conn.execute("UPDATE orders SET status = 'closed' WHERE channel = ? AND order_id = ? "
                                  "AND status != 'paid'", (channel, order_id)).rowcount
        if not closed:
            return jsonify(code="ORDERPAID", message="the order is paid"), 409
        return "", 204

    @app.get("/<channel>/orders/<order_id>/notification")
    def query(channel: str, order_id: str):
        """Order query: a paid order answers with the same signed notification a callback carries."""
        row = load(channel, order_id)
        if row["status"] != "paid":
            return jsonify(trade_state="NOTPAY"), 404
        signed = sign(sim_order(row))
        return Response(signed.body, headers={**signed.headers, "X-Sim-Trade-State": "SUCCESS"})

    @app.get("/<channel>/statements/<day>")
    def statement(channel: str, day: str):
        """The day's statement (对账单) in the channel's format, with its SHA-256 in a header."""
        if channel not in CHANNELS:
            abort(404)
        with db() as conn:
            rows = [sim_order(r) for r in conn.execute(
                "SELECT * FROM orders WHERE channel = ? AND status = 'paid' ORDER BY paid_at", (channel,))]
        wanted = date.fromisoformat(day)
        of_day = [r for r in rows if r.paid_at.astimezone(SHANGHAI).date() == wanted]  # a Beijing day
        data, content_type = statement_file(channel, of_day, merchant_id=merchant_id)
        return Response(data, content_type=content_type,
                        headers={"X-Statement-SHA256": hashlib.sha256(data).hexdigest()})

    @app.get("/livez")
    def livez():
        return jsonify(status="ok")

    return app
