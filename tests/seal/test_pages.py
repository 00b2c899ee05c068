"""Seal-management pages: sign-in through identity, list with usage, detail, status change with CSRF."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from common.db import get_db
from seal.console_models import ConsoleSession
from tests.support.console import GATEWAY, WANG, GatewayBrowser


class Staff:
    """王五 signed in to the management console through identity; paths under ``/seal``."""

    def __init__(self, browser, app) -> None:
        self.browser = browser
        status, _ = browser.sign_in("/manage", WANG)
        assert status == 200
        with get_db(app).session() as session:
            self.sub = session.scalars(select(ConsoleSession.subject)).one()

    def get(self, path: str) -> str:
        return self.browser.go(f"{GATEWAY}/seal{path}")[1]

    def post(self, path: str, data: dict) -> str:
        return self.browser.go(f"{GATEWAY}/seal{path}", "POST", data)[1]


@pytest.fixture
def staff(gateway_browser, console_app):
    return Staff(gateway_browser(), console_app)


def test_requires_sign_in(console_app):
    response = console_app.test_client().get("/manage")
    assert response.status_code == 302 and response.headers["Location"].startswith("/manage/login?next=")
    assert console_app.test_client().post("/manage/seals/x/status", data={}).status_code == 400  # CSRF first


def test_console_answers_with_and_without_trailing_slash(console_app):
    client = console_app.test_client()
    for path in ("/manage", "/manage/"):
        response = client.get(path)
        assert response.status_code == 302 and "/manage/login" in response.headers["Location"]


def test_list_detail_and_suspend(staff, console_seal_id):
    page = staff.get("/manage")
    assert "合同专用章" in page and "正常" in page and f"/seals/{console_seal_id}/image" in page
    english = staff.get("/manage?lang=en")
    assert "Contract seal" in english and "Active" in english
    detail = staff.get(f"/manage/seals/{console_seal_id}?lang=zh")
    assert "应用" in detail and "xsn-licenses" in detail and "新增授权" in detail
    assert "grant_added" not in detail  # history events are shown in words, not codes
    staff.post(f"/manage/seals/{console_seal_id}/status",
               {"action": "suspend", "reason": "年检", "csrf_token": GatewayBrowser.csrf(detail)})
    after = staff.get(f"/manage/seals/{console_seal_id}")
    assert "已暂停" in after and "年检" in after and staff.sub in after and "王五" in after


def test_an_unknown_seal_is_an_error_page_not_a_problem_document(staff):
    status, body = staff.browser.go(f"{GATEWAY}/seal/manage/seals/no-such-seal")
    assert status == 404 and 'data-code="seal_not_found"' in body and "印章不存在" in body
    assert "请求编号" in body and "返回列表" in body and '"type"' not in body


def test_status_forms_explain_refusals(staff, console_seal_id):
    detail = staff.get(f"/manage/seals/{console_seal_id}?lang=zh")
    assert 'id="suspend-form"' in detail and 'id="revoke-form"' in detail and 'id="resume-form"' not in detail
    csrf = GatewayBrowser.csrf(detail)
    path = f"/manage/seals/{console_seal_id}/status"
    missing_reason = staff.post(path, {"action": "suspend", "reason": " ", "csrf_token": csrf})
    assert "请填写原因" in missing_reason and "正常" in missing_reason
    unconfirmed = staff.post(path, {"action": "revoke", "reason": "遗失", "csrf_token": csrf})
    assert "请勾选确认" in unconfirmed and 'id="revoke-form"' in unconfirmed  # still active
    wrong = staff.post(path, {"action": "resume", "csrf_token": csrf})
    assert "印章当前状态不允许此操作" in wrong  # an active seal cannot be resumed
    revoked = staff.post(path, {"action": "revoke", "reason": "遗失", "confirm": "yes", "csrf_token": csrf})
    assert "印章已撤销" in revoked and "已撤销" in revoked and 'id="revoke-form"' not in revoked
    assert "遗失" in revoked and staff.sub in revoked
    listed = staff.get("/manage?status=revoked")
    assert f'data-seal-id="{console_seal_id}"' in listed
    assert f'data-seal-id="{console_seal_id}"' not in staff.get("/manage?status=active")
    assert "没有符合条件的印章" in staff.get("/manage?status=active")
    english = staff.get(f"/manage/seals/{console_seal_id}?lang=en")
    assert "Revoked" in english and "can no longer sign" in english
