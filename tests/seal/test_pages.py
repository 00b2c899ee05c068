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
    assert "client:xsn-licenses" in detail
    response = client.post(f"/manage/seals/{seal_id}/status",
                           data={"action": "suspend", "reason": "年检", "csrf_token": _csrf(detail)})
    assert response.status_code == 302
    after = client.get(f"/manage/seals/{seal_id}").get_data(as_text=True)
    assert "已暂停" in after and "年检" in after and "staff-1" in after
