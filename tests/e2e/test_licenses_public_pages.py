"""The public QR and check pages through the gateway: a code is drawn (or checked) from the POST
form only; a code in the URL is sent on to the empty form, under the gateway's prefix
(licenses.pages.code_in_url)."""

from __future__ import annotations

import pytest
import requests

from tests.support.console import GatewayBrowser

pytestmark = pytest.mark.e2e


def test_the_qr_page_takes_the_code_from_its_form_not_its_url(suite):
    gateway = suite.base_url("gateway")
    browser = requests.Session()
    sent_on = browser.get(f"{gateway}/licenses/show", params={"code": "ABCDEFGH23", "lang": "en"},
                          allow_redirects=False, timeout=10)
    assert (sent_on.status_code, sent_on.headers["Location"]) == (303, "/licenses/show?lang=en")
    form = browser.get(f"{gateway}/licenses/show", params={"code": "ABCDEFGH23"}, timeout=10)
    assert form.status_code == 200 and form.url == f"{gateway}/licenses/show"
    assert "ABCDEFGH23" not in form.text and "data:image/png" not in form.text
    token = GatewayBrowser.csrf(form.text)
    drawn = browser.post(f"{gateway}/licenses/show", data={"code": "ABCDEFGH23", "csrf_token": token}, timeout=10)
    assert drawn.status_code == 200 and "data:image/png;base64," in drawn.text and "ABCDEFGH23" in drawn.text
    assert drawn.headers["Cache-Control"] == "no-store"


def test_the_check_page_sends_a_code_in_its_url_on_to_the_empty_form(suite):
    gateway = suite.base_url("gateway")
    browser = requests.Session()
    code = "XSN1:NOT-A-REAL-CODE"
    sent_on = browser.get(f"{gateway}/licenses/check", params={"code": code, "lang": "en"},
                          allow_redirects=False, timeout=10)
    assert (sent_on.status_code, sent_on.headers["Location"]) == (303, "/licenses/check?lang=en")
    assert sent_on.headers["Cache-Control"] == "no-store"
    form = browser.get(f"{gateway}/licenses/check", params={"code": code}, timeout=10)
    assert form.status_code == 200 and form.url == f"{gateway}/licenses/check"
    assert "NOT-A-REAL-CODE" not in form.text and 'id="result"' not in form.text
    checked = browser.post(f"{gateway}/licenses/check", data={"csrf_token": GatewayBrowser.csrf(form.text)},
                           timeout=10)
    assert checked.status_code == 200 and 'id="result"' not in checked.text
