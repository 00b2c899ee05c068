"""A payment notice paid through the gateway and the channel simulator, end to end.

A department's system (client ``xsn-dept-market``) issues a notice through the gateway; the
payer finds it at the cashier and pays through the simulated WeChat Pay, which sends its
signed notification three times (and a second order's out of order); the notice is posted
once; a partial refund posts; the day's statement is fetched from the simulator and reconciles
with one injected difference (a payment whose notification never came), resolved by a recorded
action; ``xsn ledger check`` passes on the node's database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.support.console import CSRF_RE
from tests.support.suite import client_token, wait_for

pytestmark = pytest.mark.e2e

BODY = {"payer_kind": "person", "payer_name": "张三", "payer_id": "11010519491231002X",
        "items": [{"fee_code": "MKT-001", "quantity": 1}, {"fee_code": "MKT-002", "quantity": 1}],
        "total_amount": 6000}


def _token(suite, client_id: str, scope: str) -> dict[str, str]:
    token = client_token(suite, client_id, scope=scope, resource="xsn:payment")["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _issue(gateway: str, collector: dict, key: str) -> dict:
    body = dict(BODY, due_date=(date.today() + timedelta(days=7)).isoformat())
    answer = requests.post(f"{gateway}/payment/notices", json=body, timeout=10,
                           headers={**collector, "Idempotency-Key": key})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _pay_at_cashier(gateway: str, notice: dict, channel: str) -> str:
    """The payer's steps at the cashier; returns the institution's pay page URL."""
    browser = requests.Session()
    page = browser.get(f"{gateway}/payment/cashier", timeout=10)
    csrf = CSRF_RE.search(page.text).group(1)
    answer = browser.post(f"{gateway}/payment/cashier/pay", allow_redirects=False, timeout=10,
                          data={"csrf_token": csrf, "payment_code": notice["payment_code"], "payer_name": "张三",
                                "channel": channel})
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def test_pay_refund_and_reconcile_through_the_gateway(suite):
    gateway = suite.base_url("gateway")
    collector = _token(suite, "xsn-dept-market", "payment:collect")
    finance = _token(suite, "xsn-admin", "payment:admin")

    def received() -> int:  # the suite is shared: other tests pay through WeChat too
        accounts = requests.get(f"{gateway}/payment/ledger/accounts", headers=finance, timeout=10).json()
        return next(a for a in accounts if a["id"] == "channel_receivable:wechat")["debits_posted"]

    before = received()
    notice = _issue(gateway, collector, "e2e-pay-1")
    pay_url = _pay_at_cashier(gateway, notice, "wechat")
    assert pay_url.startswith(suite.base_url("channel-sim"))
    paid = requests.post(f"{pay_url}?duplicates=2&redirect=0", timeout=10)
    assert paid.status_code == 200, paid.text

    def notice_paid():
        answer = requests.get(f"{gateway}/payment/notices/{notice['id']}", headers=collector, timeout=10)
        return answer.json()["status"] == "paid" and answer.json()

    assert wait_for(notice_paid, 30, "the notice paid", interval=0.3)["paid_amount"] == 6000
    time.sleep(2)  # let the duplicates arrive: they must change nothing
    assert received() - before == 6000

    # A second payment whose notification never comes: the statement will show it.
    lost = _issue(gateway, collector, "e2e-pay-2")
    lost_pay_url = _pay_at_cashier(gateway, lost, "wechat")
    assert requests.post(f"{lost_pay_url}?drop=1&redirect=0", timeout=10).status_code == 200

    refund = requests.post(f"{gateway}/payment/notices/{notice['id']}/refunds", timeout=10,
                           headers={**collector, "Idempotency-Key": "e2e-refund-1"},
                           json={"amount": 1000, "reason": "部分退费"})
    assert refund.status_code == 201, refund.text
    assert requests.get(f"{gateway}/payment/notices/{notice['id']}", headers=collector,
                        timeout=10).json()["status"] == "partially_refunded"

    day = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    report = requests.post(f"{gateway}/payment/reconciliation/wechat/{day}/fetch", headers=finance, timeout=30)
    assert report.status_code == 201, report.text
    differences = report.json()["differences"]
    assert [(d["kind"], d["order_id"] is not None) for d in differences] == [("missing_here", True)]
    resolved = requests.post(f"{gateway}/payment/reconciliation/differences/{differences[0]['id']}/resolve",
                             headers=finance, timeout=30, json={"action": "post", "reason": "回调丢失，按渠道查询补记"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved", resolved.text
    assert requests.get(f"{gateway}/payment/notices/{lost['id']}", headers=collector,
                        timeout=10).json()["status"] == "paid"

    check = subprocess.run([sys.executable, "-m", "common.ops.cli", "ledger", "check"], capture_output=True, text=True,
                           env={**os.environ, **suite.child_env()}, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK" in check.stdout


def test_a_forged_notification_through_the_gateway_is_refused(suite):
    gateway = suite.base_url("gateway")
    answer = requests.post(f"{gateway}/payment/channels/wechat/notify", timeout=10, data=b"{}",
                           headers={"Wechatpay-Timestamp": str(int(time.time())), "Wechatpay-Nonce": "n",
                                    "Wechatpay-Signature": "AAAA", "Wechatpay-Serial": "x",
                                    "X-Forwarded-For": "10.9.9.9"})
    assert answer.status_code == 500 and answer.json()["code"] == "FAIL"


def test_ledger_transfers_refuse_unstorable_text_and_huge_integers_through_the_gateway(suite):
    """What a client may send to the ledger through the gateway: text PostgreSQL cannot store
    (NUL, an unpaired surrogate) is a 422 naming the field, a body Python's JSON refuses beyond
    its syntax (a 5,000-digit integer) a 400; problem+json, nothing written, whatever
    X-Forwarded-For it claims."""
    url = f"{suite.base_url('gateway')}/payment/ledger/transfers"
    finance = {**_token(suite, "xsn-admin", "payment:admin"), "X-Forwarded-For": "10.6.6.6"}
    transfer = {"id": "e2e-unstorable", "debit_account_id": "channel_receivable:bank",
                "credit_account_id": "payer_clearing", "amount": 1, "code": "payment"}
    before = _balances(suite, finance)
    for member, value in (("reference", "a\x00b"), ("id", "x\ud800")):
        body = json.dumps({"transfers": [{**transfer, member: value}]})  # escaped: \\u0000, \\ud800
        answer = requests.post(url, data=body, timeout=10, headers={**finance, "Content-Type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert member in answer.json()["errors"]["transfers"]["0"], answer.json()
    huge = b'{"transfers": [{"amount": ' + b"1" * 5000 + b"}]}"
    answer = requests.post(url, data=huge, timeout=10, headers={**finance, "Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["code"] == "malformed_json", answer.text
    assert _balances(suite, finance) == before  # nothing written


def _balances(suite, finance: dict) -> dict:
    accounts = requests.get(f"{suite.base_url('gateway')}/payment/ledger/accounts", headers=finance, timeout=10)
    assert accounts.status_code == 200, accounts.text
    return {a["id"]: a for a in accounts.json() if a["id"] in ("channel_receivable:bank", "payer_clearing")}


def test_an_order_the_payer_walked_away_from_is_closed_and_the_notice_is_payable_again(suite):
    gateway = suite.base_url("gateway")
    collector = _token(suite, "xsn-dept-market", "payment:collect")
    notice = _issue(gateway, collector, "e2e-stale-1")
    pay_url = _pay_at_cashier(gateway, notice, "wechat")  # the payer opens WeChat Pay's page and leaves
    status = requests.get(f"{gateway}/payment/notices/{notice['id']}", headers=collector, timeout=10).json()["status"]
    assert status == "paying"

    swept = subprocess.run([sys.executable, "-m", "common.ops.cli", "payment", "close-stale-orders", "--older-than",
                            "0"], capture_output=True, text=True, env={**os.environ, **suite.child_env()}, timeout=60)
    assert swept.returncode == 0 and "closed" in swept.stdout, swept.stdout + swept.stderr
    assert requests.get(f"{gateway}/payment/notices/{notice['id']}", headers=collector,
                        timeout=10).json()["status"] == "created"
    late = requests.post(f"{pay_url}?redirect=0", timeout=10)  # the institution takes no payment for it now
    assert late.status_code == 409 and late.json()["code"] == "ORDER_CLOSED"
    again = _pay_at_cashier(gateway, notice, "wechat")  # a new order, paid this time
    assert requests.post(f"{again}?redirect=0", timeout=10).status_code == 200
    assert wait_for(lambda: requests.get(f"{gateway}/payment/notices/{notice['id']}", headers=collector,
                                         timeout=10).json()["status"] == "paid",
                    30, "the notice paid again", interval=0.3)
