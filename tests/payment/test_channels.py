"""Channel adapters: what each institution sends is verified before anything is trusted."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

import pytest

from payment.channel_sim.keys import institution_keys
from payment.channel_sim.notifications import SimOrder, alipay_notification, bank_notification, wechat_notification
from payment.channel_sim.statements import statement_file
from payment.channels import alipay
from payment.channels.base import CallbackRejected
from payment.channels.registry import build_channels
from payment.channels.statements import MalformedStatement, parse_statement

MCH, APP = "1900000109", "2021000000000001"
ORDER = SimOrder("wechat", "o-1", 4550, "WX123", datetime(2026, 12, 1, 8, 0, tzinfo=UTC))


def _adapters(var_dir):
    return build_channels({"ENV": "embedded", "PAYMENT_WECHAT_MERCHANT_ID": MCH, "PAYMENT_ALIPAY_APP_ID": APP},
                          embedded_keys=institution_keys(var_dir))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    var = tmp_path_factory.mktemp("var")
    return institution_keys(var), _adapters(var)


def test_a_genuine_wechat_notification_verifies(env):
    keys, adapters = env
    signed = wechat_notification(keys, ORDER, MCH)
    paid = adapters["wechat"].parse_callback(signed.headers, signed.body, time.time())
    assert (paid.order_id, paid.channel_transaction_id, paid.amount) == ("o-1", "WX123", 4550)
    assert adapters["wechat"].ack().status == 204


@pytest.mark.parametrize(("tamper", "code"), [
    (lambda h, b: (h, b.replace(b"TRANSACTION", b"TRANSACTIOM")), "callback_bad_signature"),
    (lambda h, b: ({**h, "Wechatpay-Serial": "00"}, b), "callback_unknown_key"),
    (lambda h, b: ({**h, "Wechatpay-Timestamp": str(int(time.time()) - 3600)}, b), "callback_stale"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "Wechatpay-Signature"}, b), "callback_unsigned"),
    (lambda h, b: ({**h, "Wechatpay-Signature": "%%%"}, b), "callback_unsigned"),
])
def test_a_tampered_wechat_notification_is_rejected(env, tamper, code):
    keys, adapters = env
    signed = wechat_notification(keys, ORDER, MCH)
    headers, body = tamper(dict(signed.headers), signed.body)
    with pytest.raises(CallbackRejected) as raised:
        adapters["wechat"].parse_callback(headers, body, time.time())
    assert raised.value.code == code


def test_a_wechat_notification_signed_by_another_key_or_for_another_merchant_is_rejected(env, tmp_path):
    keys, adapters = env
    other = institution_keys(tmp_path)
    signed = wechat_notification(other, ORDER, MCH)
    with pytest.raises(CallbackRejected) as raised:
        adapters["wechat"].parse_callback(signed.headers, signed.body, time.time())
    assert raised.value.code == "callback_bad_signature"
    signed = wechat_notification(keys, ORDER, "1999999999")
    with pytest.raises(CallbackRejected) as raised:
        adapters["wechat"].parse_callback(signed.headers, signed.body, time.time())
    assert raised.value.code == "callback_not_paid"


def test_a_wechat_resource_encrypted_under_another_key_is_rejected(env, tmp_path):
    keys, adapters = env
    other = institution_keys(tmp_path)
    mixed = type(keys)(keys.wechat_private, keys.alipay_private, other.wechat_api_v3_key, keys.bank_secret)
    signed = wechat_notification(mixed, ORDER, MCH)
    with pytest.raises(CallbackRejected) as raised:
        adapters["wechat"].parse_callback(signed.headers, signed.body, time.time())
    assert raised.value.code == "callback_bad_resource"


def test_alipay_verifies_rsa2_over_sorted_parameters_and_acks_success(env):
    keys, adapters = env
    signed = alipay_notification(keys, SimOrder("alipay", "o-2", 1001, "2026120122001", ORDER.paid_at), APP)
    paid = adapters["alipay"].parse_callback(signed.headers, signed.body, time.time())
    assert (paid.order_id, paid.amount) == ("o-2", 1001)
    assert adapters["alipay"].ack().body == b"success"
    params = dict(parse_qsl(signed.body.decode()))
    params["total_amount"] = "0.01"
    with pytest.raises(CallbackRejected) as raised:
        adapters["alipay"].parse_callback({}, urlencode(params).encode(), time.time())
    assert raised.value.code == "callback_bad_signature"


@pytest.mark.parametrize(("yuan", "fen"), [("45.50", 4550), ("0.01", 1), ("12", 1200)])
def test_alipay_amounts(yuan, fen):
    assert alipay.fen_of(yuan) == fen and alipay.fen_of(alipay.yuan_of(fen)) == fen


@pytest.mark.parametrize("yuan", ["0", "-1.00", "1.001", "abc", "NaN"])
def test_alipay_bad_amounts(yuan):
    with pytest.raises(CallbackRejected):
        alipay.fen_of(yuan)


def test_bank_notification_hmac_sm3(env):
    keys, adapters = env
    signed = bank_notification(keys, SimOrder("bank", "o-3", 700, "BK1", ORDER.paid_at))
    assert adapters["bank"].parse_callback(signed.headers, signed.body, time.time()).amount == 700
    body = signed.body.replace(b'"amount": 700', b'"amount": 7000')
    with pytest.raises(CallbackRejected) as raised:
        adapters["bank"].parse_callback(signed.headers, body, time.time())
    assert raised.value.code == "callback_bad_signature"


def test_production_refuses_to_build_channels_without_keys(tmp_path):
    with pytest.raises(RuntimeError, match="must be set in production"):
        build_channels({"ENV": "production", "PAYMENT_WECHAT_MERCHANT_ID": MCH, "PAYMENT_ALIPAY_APP_ID": APP},
                       embedded_keys=institution_keys(tmp_path))


@pytest.mark.parametrize("channel", ["wechat", "alipay", "bank"])
def test_each_statement_format_round_trips(channel):
    orders = [SimOrder(channel, f"o-{i}", 100 * i + 1, f"T{i}", ORDER.paid_at) for i in range(1, 4)]
    data, _type = statement_file(channel, orders, merchant_id=MCH)
    lines = parse_statement(channel, data)
    assert [(x.order_id, x.channel_transaction_id, x.amount) for x in lines] == [
        (o.order_id, o.transaction_id, o.amount) for o in orders]


@pytest.mark.parametrize(("channel", "data"), [
    ("wechat", b"not,a,statement\n"),
    ("wechat", "交易时间,商户号,微信订单号,商户订单号,交易状态,应结订单金额\n`x,`y,`T1,`o-1,`SUCCESS,`1.00\n".encode()),
    ("alipay", b"PK\x03\x04 broken zip"),
    ("bank", b"bank_txn_id,order_id,amount_fen,paid_at\nT1,o-1,-5,2026-12-01\n"),
    ("bank", b"bank_txn_id,order_id,amount_fen,paid_at\nT1,o-1\n"),
    ("bank", b"\xff\xfe"),
    ("nowhere", b""),
])
def test_malformed_statements_are_refused_whole(channel, data):
    with pytest.raises(MalformedStatement):
        parse_statement(channel, data)


def test_the_wechat_summary_must_match_the_lines():
    orders = [SimOrder("wechat", "o-1", 100, "T1", ORDER.paid_at)]
    data, _type = statement_file("wechat", orders, merchant_id=MCH)
    assert parse_statement("wechat", data)
    lines = data.decode().splitlines()
    lines[-1] = "`1,`2.00"  # the summary claims more than the lines hold
    with pytest.raises(MalformedStatement, match="summary"):
        parse_statement("wechat", ("\n".join(lines) + "\n").encode())


@pytest.mark.parametrize(("channel", "name"), [("wechat", "微信支付"), ("alipay", "支付宝"), ("bank", "银行柜台")])
def test_the_simulators_pay_page_is_titled_with_the_channels_name(tmp_path, channel, name):
    from payment.channel_sim.app import create_sim_app

    client = create_sim_app(tmp_path, merchant_id=MCH, app_id=APP).test_client()
    opened = client.post(f"/{channel}/orders", json={"order_id": "o-1", "amount": 100,
                                                     "notify_url": "http://127.0.0.1:9/notify"})
    assert opened.status_code == 201
    page = client.get(f"/{channel}/pay/o-1").get_data(as_text=True)
    assert f"<title>{name} 模拟支付</title>" in page and f"<h1>{name}（模拟）</h1>" in page
