"""Seal-management pages: token sign-in, list with usage, detail, status change with CSRF."""

from __future__ import annotations

import re


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(client, token):
    page = client.get("/manage/login").get_data(as_text=True)
    return client.post("/manage/login", data={"token": token, "csrf_token": _csrf(page)})


def test_requires_admin_token(client, tokens, seal_id):
    assert client.get("/manage").status_code == 302
    refused = _login(client, tokens.token(sub="x", scope="seal:sign"))
    assert refused.status_code == 401 and "seal:admin" in refused.get_data(as_text=True)
    assert _login(client, "not-a-token").status_code == 401
    no_csrf = client.post("/manage/login", data={"token": tokens.token(scope="seal:admin")})
    assert no_csrf.status_code == 400


def test_list_detail_and_suspend(client, tokens, seal_id):
    assert _login(client, tokens.token(sub="staff-1", scope="seal:admin")).status_code == 302
    page = client.get("/manage").get_data(as_text=True)
    assert "合同专用章" in page and "正常" in page and f"/seals/{seal_id}/image" in page
    english = client.get("/manage?lang=en").get_data(as_text=True)
    assert "Contract seal" in english and "Active" in english
    detail = client.get(f"/manage/seals/{seal_id}?lang=zh").get_data(as_text=True)
    assert "应用" in detail and "xsn-licenses" in detail and "新增授权" in detail
    assert "grant_added" not in detail  # history events are shown in words, not codes
    response = client.post(f"/manage/seals/{seal_id}/status",
                           data={"action": "suspend", "reason": "年检", "csrf_token": _csrf(detail)})
    assert response.status_code == 302
    after = client.get(f"/manage/seals/{seal_id}").get_data(as_text=True)
    assert "已暂停" in after and "年检" in after and "staff-1" in after


def test_status_forms_explain_refusals(client, tokens, seal_id):
    assert _login(client, tokens.token(sub="staff-2", scope="seal:admin")).status_code == 302
    detail = client.get(f"/manage/seals/{seal_id}?lang=zh").get_data(as_text=True)
    assert 'id="suspend-form"' in detail and 'id="revoke-form"' in detail and 'id="resume-form"' not in detail
    csrf = _csrf(detail)
    path = f"/manage/seals/{seal_id}/status"
    missing_reason = client.post(path, data={"action": "suspend", "reason": " ", "csrf_token": csrf},
                                 follow_redirects=True).get_data(as_text=True)
    assert "请填写原因" in missing_reason and "正常" in missing_reason
    unconfirmed = client.post(path, data={"action": "revoke", "reason": "遗失", "csrf_token": csrf},
                              follow_redirects=True).get_data(as_text=True)
    assert "请勾选确认" in unconfirmed and 'id="revoke-form"' in unconfirmed  # still active
    wrong = client.post(path, data={"action": "resume", "csrf_token": csrf},
                        follow_redirects=True).get_data(as_text=True)
    assert "印章当前状态不允许此操作" in wrong  # an active seal cannot be resumed
    revoked = client.post(path, data={"action": "revoke", "reason": "遗失", "confirm": "yes", "csrf_token": csrf},
                          follow_redirects=True).get_data(as_text=True)
    assert "印章已撤销" in revoked and "已撤销" in revoked and 'id="revoke-form"' not in revoked
    assert "遗失" in revoked and "staff-2" in revoked
    listed = client.get("/manage?status=revoked").get_data(as_text=True)
    assert f'data-seal-id="{seal_id}"' in listed
    assert f'data-seal-id="{seal_id}"' not in client.get("/manage?status=active").get_data(as_text=True)
    assert "没有符合条件的印章" in client.get("/manage?status=active").get_data(as_text=True)
    english = client.get(f"/manage/seals/{seal_id}?lang=en").get_data(as_text=True)
    assert "Revoked" in english and "can no longer sign" in english
