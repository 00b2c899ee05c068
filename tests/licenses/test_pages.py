"""The public verification page and the holder's QR page (Chinese; English with ?lang=en)."""

from __future__ import annotations

import re


def _csrf(client, path="/check") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _offline_code(h) -> tuple[dict, str]:
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], fields=["name"]).get_json()
    code = h.client.post(f"/my/authorisations/{auth['id']}/offline-code", headers=h.holder("p-zhang"))
    return permit, code.get_json()["code"]


def test_check_page_verifies_an_offline_code(h):
    permit, code = _offline_code(h)
    page = h.client.post("/check", data={"code": code, "csrf_token": _csrf(h.client)}).get_data(as_text=True)
    assert "核验通过" in page and "居住证" in page and "张三" in page and permit["identifier"] in page
    assert "西安市雁塔区长安南路100号" not in page  # the address was not authorised
    english = h.client.get("/check?lang=en").get_data(as_text=True)
    assert "Verify an electronic licence" in english


def test_check_page_names_fields_and_checks_in_the_page_language(h):
    _permit, code = _offline_code(h)
    page = h.client.post("/check", data={"code": code, "csrf_token": _csrf(h.client)}).get_data(as_text=True)
    # the catalogue's label, not the field's name in the code; each check named in Chinese
    assert "<th>姓名</th><td>张三</td>" in page and "<th>name</th>" not in page
    assert "签名: ✔" in page and "证照状态: ✔" in page and "（北京时间）" in page
    english = h.client.post("/check?lang=en", data={"code": code, "csrf_token": _csrf(h.client, "/check?lang=en")})
    english = english.get_data(as_text=True)
    assert "<th>Name</th><td>张三</td>" in english and "Licence status: ✔" in english


def test_check_page_refuses_after_revocation_and_tampering(h):
    permit, code = _offline_code(h)
    h.client.post(f"/licences/{permit['id']}/status", json={"action": "revoke", "reason": "迁出", "kind": "cancelled"},
                  headers=h.police)
    page = h.client.post("/check", data={"code": code, "csrf_token": _csrf(h.client)}).get_data(as_text=True)
    assert "核验未通过" in page and "licence_not_valid" in page
    forged = code[:-6] + ("A" if code[-6] != "A" else "B") + code[-5:]
    page = h.client.post("/check", data={"code": forged, "csrf_token": _csrf(h.client)}).get_data(as_text=True)
    assert "核验未通过" in page


def test_check_page_explains_short_codes_and_needs_csrf(h):
    page = h.client.post("/check", data={"code": "ABCDEFGH23", "csrf_token": _csrf(h.client)})
    assert "licenses:verify" in page.get_data(as_text=True)
    refused = h.client.post("/check", data={"code": "x"})
    assert refused.status_code == 400 and refused.get_json()["code"] == "csrf_failed"


def test_show_page_draws_the_code_it_is_posted(h):
    answer = h.client.post("/show", data={"code": "ABCDEFGH23", "csrf_token": _csrf(h.client, "/show")})
    page = answer.get_data(as_text=True)
    assert "出示证照" in page and "data:image/png;base64," in page and "ABCDEFGH23" in page
    assert answer.headers["Cache-Control"] == "no-store"  # not kept by a cache or the back button
    empty = h.client.get("/show")
    assert 'name="code"' in empty.get_data(as_text=True) and "data:image/png" not in empty.get_data(as_text=True)
    refused = h.client.post("/show", data={"code": "ABCDEFGH23"})
    assert refused.status_code == 400 and refused.get_json()["code"] == "csrf_failed"


def test_a_code_in_the_url_is_neither_drawn_nor_checked(h):
    """A live code in a URL stays in access logs, history and Referer: the pages take it from
    a POST body only. The GET is the empty form (the page's own GET), not a refusal."""
    from urllib.parse import urlencode

    _permit, code = _offline_code(h)
    for page, query, rest in (("/show", {"code": "ABCDEFGH23"}, ""), ("/check", {"code": code}, ""),
                              ("/show", {"code": code, "lang": "en"}, "?lang=en")):
        answer = h.client.get(f"{page}?{urlencode(query)}")
        # sent on without it: the code leaves the address bar and the links built from the URL
        assert (answer.status_code, answer.headers["Location"]) == (303, page + rest)
        assert answer.headers["Cache-Control"] == "no-store"  # a URL with a code: no cache keeps its answer
        answer = h.client.get(f"{page}?{urlencode(query)}", follow_redirects=True)
        body = answer.get_data(as_text=True)
        assert answer.status_code == 200 and 'name="code"' in body, page
        assert "data:image/png" not in body and "ABCDEFGH23" not in body and code not in body, page
        assert 'id="result"' not in body, page
    checked = h.client.post("/check", data={"code": code, "csrf_token": _csrf(h.client)})
    assert checked.headers["Cache-Control"] == "no-store" and 'id="result"' in checked.get_data(as_text=True)
    # a POST takes the code from its body only: one in its URL is neither drawn nor checked
    drawn = h.client.post("/show?code=ABCDEFGH23", data={"csrf_token": _csrf(h.client, "/show")})
    body = drawn.get_data(as_text=True)
    assert drawn.status_code == 200 and "data:image/png" not in body and 'id="code"' not in body.split("<form")[0]
    checked = h.client.post(f"/check?{urlencode({'code': code})}", data={"csrf_token": _csrf(h.client)})
    body = checked.get_data(as_text=True)
    assert checked.status_code == 200 and 'id="result"' not in body


def test_an_over_long_posted_code_is_cut_before_it_is_drawn(h, monkeypatch):
    from licenses import offline_codes, pages

    drawn = []
    monkeypatch.setattr(pages, "qr_data_uri", lambda data: drawn.append(data) or "data:image/png;base64,")
    code = "A" * offline_codes.MAX_CODE_CHARS
    answer = h.client.post("/show", data={"code": code + "BCD", "csrf_token": _csrf(h.client, "/show")})
    assert answer.status_code == 200 and drawn == [code]


def test_text_too_long_for_a_qr_code_is_said_on_the_form_not_a_500(h):
    """MAX_CODE_CHARS (4,096) is more than a QR code holds at the page's error correction (M)."""
    for text in ("A" * 4000, "a" * 3000):  # alphanumeric, and bytes
        answer = h.client.post("/show", data={"code": text, "csrf_token": _csrf(h.client, "/show")})
        body = answer.get_data(as_text=True)
        assert answer.status_code == 422 and 'id="too-long"' in body and "无法生成二维码" in body
        assert 'name="code"' in body and "data:image/png" not in body and text not in body
        assert answer.headers["Cache-Control"] == "no-store"
