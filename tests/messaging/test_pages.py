"""The inbox page: signed-in person only, Chinese by default, read and delete without JavaScript."""

from __future__ import annotations

import re

from messaging.console_models import ConsoleSession
from messaging.pages import CONSOLE
from tests.support.console import signed_in_client

ISSUED = {"licence_name": "营业执照", "face_number": "61010020260001", "issuer": "西安市市场监督管理局"}


def signed_in(app, tokens, sub: str, scope: str = "openid profile messaging:inbox"):
    """A browser whose console session was made as the sign-in callback makes it."""
    token = tokens.token(sub=sub, scope=scope, aud="xsn:messaging", client_id="xsn-messaging-inbox")
    return signed_in_client(app, ConsoleSession, CONSOLE, subject=sub, name="张三", access_token=token)


def csrf(body: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)


def test_the_inbox_page_lists_marks_read_and_deletes(hub_app, tokens, licenses):
    for n in range(2):
        licenses.send({"template": "licence_issued", "variables": {**ISSUED, "face_number": f"F-{n}"},
                       "recipients": [{"subject": "person-zhang"}]})
    browser = signed_in(hub_app, tokens, "person-zhang")
    page = browser.get("/me/inbox")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "我的消息" in body and "未读 2 条" in body and "F-1" in body
    item = re.search(r'data-item="(\d+)"', body).group(1)
    response = browser.post(f"/me/inbox/{item}/read", data={"csrf_token": csrf(body)})
    assert response.status_code == 302
    body = browser.get("/me/inbox").get_data(as_text=True)
    assert "未读 1 条" in body
    assert browser.post(f"/me/inbox/{item}/delete", data={}).status_code == 400  # no CSRF token
    browser.post(f"/me/inbox/{item}/delete", data={"csrf_token": csrf(body)})
    body = browser.get("/me/inbox?lang=en").get_data(as_text=True)
    assert "My messages" in body and "1 unread" in body and body.count("data-item=") == 1


def test_someone_elses_item_is_not_found_and_strangers_are_sent_to_sign_in(hub_app, tokens, licenses):
    licenses.send({"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-zhang"}]})
    li = signed_in(hub_app, tokens, "person-li")
    body = li.get("/me/inbox").get_data(as_text=True)
    assert "暂无消息" in body
    missing = li.post("/me/inbox/1/read?lang=en", data={"csrf_token": csrf(body)})
    page = missing.get_data(as_text=True)
    assert missing.status_code == 404 and missing.mimetype == "text/html"  # a page, not a problem document
    assert 'data-code="inbox_item_not_found"' in page and "No such message in your inbox." in page
    assert missing.headers["X-Request-ID"] in page and "Back to my messages" in page
    expired = li.post("/me/inbox/1/delete", data={})
    assert expired.status_code == 400 and 'data-code="csrf_failed"' in expired.get_data(as_text=True)
    assert "The page has expired" in expired.get_data(as_text=True)  # English: remembered from above
    anonymous = hub_app.test_client().get("/me/inbox")
    assert anonymous.status_code == 302 and "/me/login" in anonymous.headers["Location"]


def test_a_token_without_the_inbox_scope_gets_a_403_page(hub_app, tokens):
    browser = signed_in(hub_app, tokens, "person-zhang", scope="openid profile")
    response = browser.get("/me/inbox")
    assert response.status_code == 403 and "messaging:inbox" in response.get_data(as_text=True)
