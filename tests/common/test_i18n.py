"""Chinese by default; English on request, remembered, without losing the page's parameters."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import render_template_string

from common.web.i18n import gettext, init_i18n, switch_language_url


def test_language_choice_order(make_app):
    app = make_app("seal")
    init_i18n(app, {"zh": {"hello": "你好，{name}"}, "en": {"hello": "Hello, {name}"}})
    with app.test_request_context("/"):
        assert gettext("hello", name="张三") == "你好，张三"
    with app.test_request_context("/", headers={"Accept-Language": "en-GB,en;q=0.9"}):
        assert gettext("hello", name="Li") == "Hello, Li"
    with app.test_request_context("/?lang=en", headers={"Accept-Language": "zh-CN"}):
        assert gettext("hello", name="Li") == "Hello, Li"
    with app.test_request_context("/", headers={"Cookie": "xsn_lang=en"}):
        assert gettext("site.name").startswith("Xi'an")
    with app.test_request_context("/"):
        assert gettext("no.such.key") == "no.such.key"


def test_switch_link_keeps_other_parameters(make_app):
    app = make_app("seal")
    with app.test_request_context("/login?next=/authorize%3Fx%3D1&lang=zh"):
        url = urlsplit(switch_language_url())
        assert url.path == "/login"
        assert parse_qs(url.query) == {"next": ["/authorize?x=1"], "lang": ["en"]}
        html = render_template_string('{% extends "base.html" %}')
        assert "English" in html and "next=" in html


def test_chosen_language_is_remembered_in_a_cookie(make_app):
    client = make_app("seal").test_client()
    response = client.get("/livez?lang=en")
    assert "xsn_lang=en" in response.headers.get("Set-Cookie", "")
    assert "xsn_lang" not in client.get("/livez?lang=fr").headers.get("Set-Cookie", "")
    assert "xsn_lang" not in client.get("/livez", headers={"Accept-Language": "en"}).headers.get("Set-Cookie", "")
