"""The public QR page through the gateway: a code is drawn from the POST form only; a code in
the URL is sent on to the empty form, under the gateway's prefix (licenses.pages.code_in_url)."""

from __future__ import annotations

import re

import pytest
import requests

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
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    drawn = browser.post(f"{gateway}/licenses/show", data={"code": "ABCDEFGH23", "csrf_token": token}, timeout=10)
    assert drawn.status_code == 200 and "data:image/png;base64," in drawn.text and "ABCDEFGH23" in drawn.text
    assert drawn.headers["Cache-Control"] == "no-store"
