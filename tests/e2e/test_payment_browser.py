"""Done-when of the payment node in Chromium, on the real processes through the gateway: the
demo citizen 张三 finds his notice at the cashier (收银台) by payment code and name, pays
through the simulated WeChat Pay page, comes back to 缴费成功 with his e-receipt's number and
check code, and the receipt check page shows the e-receipt sealed with a valid seal."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pytest
import requests

from tests.support.suite import client_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ZHANG_SAN = "610113199001011230"  # the demo citizen (identity's seed, docs/DEMO.md)


def _issue(suite) -> dict:
    token = client_token(suite, "xsn-dept-market", scope="payment:collect", resource="xsn:payment")["access_token"]
    body = {"payer_kind": "person", "payer_name": "张三", "payer_id": ZHANG_SAN,
            "items": [{"fee_code": "MKT-001", "quantity": 1}, {"fee_code": "MKT-002", "quantity": 1}],
            "total_amount": 6000, "due_date": (date.today() + timedelta(days=7)).isoformat()}
    answer = requests.post(f"{suite.base_url('gateway')}/payment/notices", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "browser-cashier-1"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_citizen_pays_at_the_cashier_and_gets_a_sealed_e_receipt(suite, browser):
    gateway = suite.base_url("gateway")
    notice = _issue(suite)
    page = browser.new_page(locale="zh-CN")
    try:
        page.goto(f"{gateway}/payment/cashier")
        page.fill("#payment_code", notice["payment_code"])
        page.fill("#payer_name", "张三")
        page.click("#find")
        assert page.inner_text("#notice-status") == "待缴费"
        assert page.inner_text("#total") == "60.00"

        page.click("#pay-wechat")  # off to the institution's page (the simulator), as a real payer goes
        page.wait_for_url(f"{suite.base_url('channel-sim')}/wechat/pay/*")
        assert page.inner_text("#amount") == "¥60.00"
        assert page.title() == "微信支付 模拟支付"  # the channel's name, not its id
        page.click("#pay")
        page.wait_for_url(f"{gateway}/payment/cashier/result/*")  # back at our result page
        for _ in range(30):  # the notification, or the result page's own query, confirms it
            if page.get_attribute("#result", "data-status") == "paid":
                break
            time.sleep(0.5)
            page.reload()
        assert page.inner_text("#result") == "缴费成功"
        number = re.search(r"(\d{8})-(\d{10})", page.inner_text("#receipt"))
        assert number, page.inner_text("#receipt")

        page.click("#receipt a")  # the public receipt check, with code, number and check code filled in
        for _ in range(40):  # the beat task seals receipts every few seconds
            if page.get_attribute("#seal-status", "data-valid") == "true":
                break
            time.sleep(1.5)
            page.reload()
        assert "电子印章验证通过" in page.inner_text("#seal-status")
        shown = page.inner_text("#receipt")
        assert f"{number.group(1)}-{number.group(2)}" in shown
        assert "张三" in shown and "60.00" in shown
    finally:
        page.close()
    # The notification and the result page's query fallback both came: one of them posted it.
    token = client_token(suite, "xsn-dept-market", scope="payment:collect", resource="xsn:payment")["access_token"]
    events = requests.get(f"{gateway}/payment/notices/{notice['id']}/events", timeout=10,
                          headers={"Authorization": f"Bearer {token}"}).json()
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "created"), ("created", "paying"), ("paying", "paid")]
