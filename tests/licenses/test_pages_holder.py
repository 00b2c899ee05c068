"""The holder's pages (我的证照): list, a licence's face, uses and authorisations, authorising a use
and revoking it; Chinese by default, English with ?lang=en; bad form input said on the page.

A browser is signed in as the sign-in callback signs one in (a console session row and the
cookie's handle); who the person holds for comes from the in-memory holder directory of
``conftest.py`` (p-zhang holds the residence permit, p-li and p-zhao act for the company).
"""

from __future__ import annotations

import re

import pytest

from licenses.console_models import ConsoleSession
from licenses.holder_pages import CONSOLE
from tests.support.console import CSRF_RE, signed_in_client

SCOPE = "openid profile idcard:full org licenses:holder"


def signed_in(h, sub: str, scope: str = SCOPE):
    """A browser whose holder session was made as the sign-in callback makes it."""
    token = h.tokens.token(sub=sub, scope=scope, aud="xsn:licenses", client_id="xsn-licenses-holder")
    return signed_in_client(h.app, ConsoleSession, CONSOLE, subject=sub, name=sub, access_token=token)


def csrf(body: str) -> str:
    return CSRF_RE.search(body).group(1)


def _authorisation(h, authorisation_id: str):
    from common.db import get_db
    from licenses.models import Authorisation

    with get_db(h.app).session() as session:
        return session.get(Authorisation, authorisation_id)


def page(browser, path: str) -> str:
    response = browser.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def test_strangers_are_sent_to_sign_in_and_tokens_without_the_scope_get_a_403_page(h):
    anonymous = h.app.test_client().get("/me/licences")
    assert anonymous.status_code == 302 and "/me/login" in anonymous.headers["Location"]
    refused = signed_in(h, "p-zhang", scope="openid profile").get("/me/licences")
    assert refused.status_code == 403 and "licenses:holder" in refused.get_data(as_text=True)


def test_the_list_shows_type_number_status_and_validity_of_own_licences_only(h):
    permit = h.issue_residence().get_json()
    food = h.issue_food().get_json()
    zhang = page(signed_in(h, "p-zhang"), "/me/licences")
    assert "我的证照" in zhang and "居住证" in zhang and permit["face_number"] in zhang and "有效" in zhang
    assert f"{permit['valid_from']} – {permit['valid_until']}" in zhang
    assert food["face_number"] not in zhang  # the company's licence is not 张三's
    li = page(signed_in(h, "p-li"), "/me?lang=en")
    assert "My licences" in li and "Food business licence" in li and food["face_number"] in li and "Valid" in li
    assert permit["face_number"] not in li


def test_a_licence_page_shows_the_face_unmasked_uses_authorisations_and_downloads(h):
    permit = h.issue_residence().get_json()
    browser = signed_in(h, "p-zhang")
    body = page(browser, f"/me/licences/{permit['id']}")
    # the holder's own personal data, unmasked: name, ID number, every face field with its label
    assert '<td id="holder-name">张三</td>' in body and f'id="holder-code">{h.ZHANG}</td>' in body
    assert "<th>居住地址</th><td>西安市雁塔区长安南路100号</td>" in body and "暂无用证记录" in body
    document = browser.get(f"/me/licences/{permit['id']}/document")
    assert document.status_code == 200 and document.get_json()["holder"]["code"] == h.ZHANG
    signature = browser.get(f"/me/licences/{permit['id']}/signature")
    assert signature.status_code == 200 and signature.data[:1] == b"\x30"  # DER SEQUENCE
    # someone else's licence is "not found" as a page, and nothing of it shows
    other = signed_in(h, "p-li").get(f"/me/licences/{permit['id']}")
    assert other.status_code == 404 and "没有找到这张证照" in other.get_data(as_text=True)
    assert other.headers["Content-Type"].startswith("text/html") and h.ZHANG not in other.get_data(as_text=True)


def test_the_company_name_is_not_masked_for_its_own_representative(h):
    """The report: the holder's own organisation name showed masked (西**********) in /my/licences.
    Masking is for verifiers; a holder reads their own licence as issued."""
    food = h.issue_food().get_json()
    mine = h.client.get("/my/licences", headers=h.holder("p-zhao")).get_json()
    assert mine[0]["holder"] == {"kind": "organisation", "name": "西安市示范科技有限公司", "code": h.ORG}
    one = h.client.get(f"/my/licences/{food['id']}", headers=h.holder("p-zhao")).get_json()
    assert one["holder"]["name"] == "西安市示范科技有限公司"
    body = page(signed_in(h, "p-zhao"), f"/me/licences/{food['id']}")
    assert '<td id="holder-name">西安市示范科技有限公司</td>' in body
    # a window still sees it masked
    code = h.authorise(food["id"], sub="p-zhao", fields=["operator_name"]).get_json()["code"]
    verified = h.client.post("/verify", json={"code": code}, headers=h.window).get_json()
    assert verified["licence"]["holder"]["name"] == "西" + "*" * 10


def test_authorise_two_fields_then_the_code_its_qr_link_the_use_and_the_revocation(h):
    permit = h.issue_residence().get_json()
    browser = signed_in(h, "p-zhang")
    form = page(browser, f"/me/licences/{permit['id']}/authorise")
    assert 'value="name"' in form and "> 姓名</label>" in form and "> 居住地址</label>" in form
    response = browser.post(f"/me/licences/{permit['id']}/authorise", data={
        "csrf_token": csrf(form), "fields": ["name", "address"], "purpose": "办理居住登记",
        "audience": h.WINDOW_CLIENT, "minutes": "10", "max_uses": "2"})
    assert response.status_code == 302
    body = page(browser, response.headers["Location"])
    code = re.search(r'<strong class="mono" id="code"[^>]*>([A-Z0-9]+)</strong>', body).group(1)
    assert "授权已生成" in body and "姓名、居住地址" in body and '<td id="granted-by">张三（本人）</td>' in body
    # The QR page is found by the authorisation's id: the code, a bearer secret, is in no URL.
    show = re.search(r'id="show" href="([^"]+)"', body).group(1)
    assert code not in show and "?" not in show
    qr = browser.get(show)
    shown = qr.get_data(as_text=True)
    assert qr.status_code == 200 and qr.headers["Cache-Control"] == "no-store"
    assert f'<strong class="mono" id="code">{code}</strong>' in shown and 'id="qr" src="data:image/png;base64,' in shown
    assert re.search(r'href="[^"]*' + code, shown) is None  # nor on a link from it
    auth = h.client.get(f"/my/licences/{permit['id']}/authorisations", headers=h.holder("p-zhang")).get_json()[0]
    assert auth["code"] == code and auth["max_uses"] == 2 and auth["fields"] == ["address", "name"]
    assert (auth["expires_at"] and auth["purpose"] == "办理居住登记") and auth["audience"] == h.WINDOW_CLIENT

    verified = h.client.post("/verify", json={"code": code}, headers=h.window)
    assert verified.status_code == 200 and set(verified.get_json()["fields"]) == {"name", "address"}
    body = page(browser, f"/me/licences/{permit['id']}")
    uses = re.search(r'<table id="uses">.*?</table>', body, re.S).group(0)
    assert "核验通过" in uses and "办理居住登记" in uses
    assert re.search(rf'<tr data-authorisation="{auth["id"]}">.*?<td>1 / 2</td>', body, re.S)

    revoked = browser.post(f"/me/authorisations/{auth['id']}/revoke", data={"csrf_token": csrf(body)})
    assert revoked.status_code == 302 and revoked.headers["Location"].endswith(f"/me/licences/{permit['id']}")
    body = page(browser, f"/me/licences/{permit['id']}")
    assert f"授权 {code} 已撤销" in body and '<span class="state">已撤销</span>' in body
    refused = h.client.post("/verify", json={"code": code}, headers=h.window)
    assert refused.status_code == 410 and refused.get_json()["code"] == "authorisation_revoked"
    english = page(browser, f"/me/authorisations/{auth['id']}?lang=en")
    assert "Revoked" in english and "id=\"show\"" not in english
    assert '<td id="revoked-by">张三 (you) <span class="muted">' in english
    gone = page(browser, f"/me/authorisations/{auth['id']}/qr?lang=en")
    assert "This authorisation is revoked: there is no QR code to show." in gone and code not in gone


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"fields": []}, "fields", "请至少选择一项允许查看的信息"),
    ({"fields": ["name", "salary"]}, "fields", "所选信息不是该证照的照面信息"),
    ({"minutes": "ten"}, "minutes", "有效时长须为 1 到 43200 之间的整数"),
    ({"minutes": "-5"}, "minutes", "有效时长须为 1 到 43200 之间的整数"),
    ({"minutes": "9" * 40}, "minutes", "有效时长须为 1 到 43200 之间的整数"),
    ({"max_uses": "1001"}, "max_uses", "可核验次数须为 1 到 1000 之间的整数"),
    ({"max_uses": "２"}, "max_uses", "可核验次数须为 1 到 1000 之间的整数"),  # a full-width digit
    ({"purpose": "  "}, "purpose", "请填写用证事由"),
    ({"purpose": "事" * 256}, "purpose", "请填写用证事由"),
    ({"audience": ""}, "audience", "请填写核验方"),
])
def test_bad_form_input_is_said_on_the_page_and_nothing_is_written(h, data, field, message):
    from licenses.models import Authorisation

    permit = h.issue_residence().get_json()
    browser = signed_in(h, "p-zhang")
    form = page(browser, f"/me/licences/{permit['id']}/authorise")
    sent = {"csrf_token": csrf(form), "fields": ["name"], "purpose": "办理居住登记", "audience": h.WINDOW_CLIENT,
            "minutes": "10", "max_uses": "1", **data}
    response = browser.post(f"/me/licences/{permit['id']}/authorise", data=sent)
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and f'id="error-{field}">{message}' in body
    assert "授权未生成" in body and h.count(Authorisation) == 0
    if field != "fields":  # what was typed is kept, the boxes stay ticked
        assert 'value="name" checked' in body


def test_a_suspended_licence_cannot_be_authorised_and_posts_need_csrf(h):
    permit = h.issue_residence().get_json()
    h.client.post(f"/licences/{permit['id']}/status", json={"action": "suspend", "reason": "核查"}, headers=h.police)
    browser = signed_in(h, "p-zhang")
    body = page(browser, f"/me/licences/{permit['id']}")
    assert "已暂停" in body and 'id="authorise"' not in body
    form = page(browser, f"/me/licences/{permit['id']}/authorise")
    response = browser.post(f"/me/licences/{permit['id']}/authorise", data={
        "csrf_token": csrf(form), "fields": ["name"], "purpose": "x", "audience": h.WINDOW_CLIENT,
        "minutes": "10", "max_uses": "1"})
    assert response.status_code == 409 and "不能授权使用" in response.get_data(as_text=True)
    no_csrf = browser.post(f"/me/licences/{permit['id']}/authorise", data={"fields": ["name"]})
    assert no_csrf.status_code == 400 and no_csrf.mimetype == "text/html"  # a page, not a problem document
    assert 'data-code="csrf_failed"' in no_csrf.get_data(as_text=True)


def test_an_error_in_a_page_is_a_page_with_the_status_request_id_and_a_way_back(h, monkeypatch):
    from licenses import authorisations

    browser = signed_in(h, "p-zhang")
    missing = browser.get("/me/licences/no-such-licence?lang=en")
    body = missing.get_data(as_text=True)
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert 'data-code="licence_not_found"' in body and "No such licence of yours." in body
    assert missing.headers["X-Request-ID"] in body and "Back to my licences" in body

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug's own words")

    monkeypatch.setattr(authorisations, "holders_licences", broken)
    failed = browser.get("/me/licences")
    text = failed.get_data(as_text=True)
    assert failed.status_code == 500 and 'data-code="internal_error"' in text and "a bug" not in text


def test_another_holders_authorisation_cannot_be_seen_or_revoked(h):
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"]).get_json()
    li = signed_in(h, "p-li")
    body = page(li, "/me/licences")
    seen = li.get(f"/me/authorisations/{auth['id']}")
    assert seen.status_code == 404 and auth["code"] not in seen.get_data(as_text=True)
    qr = li.get(f"/me/authorisations/{auth['id']}/qr")
    assert qr.status_code == 404 and auth["code"] not in qr.get_data(as_text=True)
    revoked = li.post(f"/me/authorisations/{auth['id']}/revoke", data={"csrf_token": csrf(body)})
    assert revoked.status_code == 404
    mine = h.client.get(f"/my/licences/{permit['id']}/authorisations", headers=h.holder("p-zhang")).get_json()
    assert mine[0]["status"] == "active"


def test_a_person_identity_does_not_release_an_id_number_for_gets_a_page_saying_so(h):
    response = signed_in(h, "p-unknown").get("/me/licences")
    body = response.get_data(as_text=True)
    assert response.status_code == 403 and "未向本系统提供您的身份证号码" in body
    assert response.headers["Content-Type"].startswith("text/html")


def test_an_agent_revokes_a_colleagues_authorisation_and_the_pages_say_who_granted_and_who_revoked(h):
    """The company acts through any of its agents: 赵六 may stop what 李四 granted (李四 left,
    say); both are recorded and shown."""
    food = h.issue_food().get_json()
    auth = h.authorise(food["id"], sub="p-li", fields=["operator_name"]).get_json()
    zhao = signed_in(h, "p-zhao")
    body = page(zhao, f"/me/licences/{food['id']}")
    assert re.search(rf'<tr data-authorisation="{auth["id"]}">.*?<td class="granted-by">李四</td>', body, re.S)
    assert page(zhao, f"/me/licences/{food['id']}").count("（本人）") == 0  # 赵六 granted none of them
    revoked = zhao.post(f"/me/authorisations/{auth['id']}/revoke", data={"csrf_token": csrf(body)})
    assert revoked.status_code == 302
    row = _authorisation(h, auth["id"])
    assert (row.status, row.granted_by, row.revoked_by, row.revoked_by_name) == ("revoked", "p-li", "p-zhao", "赵六")
    li = signed_in(h, "p-li")
    assert re.search(r'<td class="granted-by">李四（本人）</td>\s*<td><span class="state">已撤销</span>\s*'
                     r'<span class="muted revoked-by">（赵六 撤销）</span>', page(li, f"/me/licences/{food['id']}"))
    mine = page(li, f"/me/authorisations/{auth['id']}")
    assert '<td id="granted-by">李四（本人）</td>' in mine and '<td id="revoked-by">赵六 <span' in mine
    # revoking again changes nothing: the first to revoke stays recorded
    again = li.post(f"/me/authorisations/{auth['id']}/revoke", data={"csrf_token": csrf(mine)})
    assert again.status_code == 302 and _authorisation(h, auth["id"]).revoked_by == "p-zhao"


# Every holder route (its error pages too), as (method, path); {licence}, {auth}: the ids.
HOLDER_ROUTES = [
    ("GET", "/me"), ("GET", "/me/"), ("GET", "/me/licences"), ("GET", "/me/licences/{licence}"),
    ("GET", "/me/licences/no-such-licence"), ("GET", "/me/licences/{licence}/document"),
    ("GET", "/me/licences/{licence}/signature"), ("GET", "/me/licences/{licence}/authorise"),
    ("POST", "/me/licences/{licence}/authorise"), ("GET", "/me/authorisations/{auth}"),
    ("GET", "/me/authorisations/{auth}/qr"), ("POST", "/me/authorisations/{auth}/revoke"),
]


@pytest.mark.parametrize(("method", "path"), HOLDER_ROUTES)
def test_the_holders_pages_are_not_stored(h, method, path):
    """They hold live codes and unmasked personal data: a shared computer's cache keeps neither."""
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"]).get_json()
    browser = signed_in(h, "p-zhang")
    path = path.format(licence=permit["id"], auth=auth["id"])
    if method == "GET":
        response = browser.get(path)
    else:  # a form's answer, sent as the page would (an empty authorise form: its error page)
        response = browser.post(path, data={"csrf_token": csrf(page(browser, "/me/licences"))})
    assert response.status_code < 500, path
    assert response.headers["Cache-Control"] == "no-store", path


def test_the_no_store_list_names_every_holder_route(h):
    rules = {(method, rule.rule) for rule in h.app.url_map.iter_rules() if rule.endpoint.startswith("holder_pages.")
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    listed = {(method, path.replace("{licence}", "<licence_id>").replace("{auth}", "<authorisation_id>"))
              for method, path in HOLDER_ROUTES if "no-such" not in path}
    assert rules == listed  # a route added later is added to the list above
