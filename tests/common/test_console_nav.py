"""The one signed-in nav (common/web/templates/console/signed_in.html) on every page someone
signs in to: the staff consoles' frame and a person's own pages, in both languages."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import g, render_template_string


@pytest.mark.parametrize(("service", "layout", "logout"), [
    ("seal", "seal/manage_base.html", "/manage/logout"),  # a staff console (console/base.html)
    ("seal", "seal/audit_base.html", "/audit/logout"),
    ("messaging", "messaging/layout.html", "/me/logout"),  # a person's own pages, their own frame
    ("licenses", "licenses/holder/layout.html", "/me/logout"),
])
def test_every_signed_in_page_has_the_shared_nav_and_wording(make_app, service, layout, logout):
    app = make_app(service)
    page = '{% extends "' + layout + '" %}{% block content %}{% endblock %}'
    for language, sign_out in (("zh", "退出"), ("en", "Sign out")):
        with app.test_request_context(f"/?lang={language}"):
            g.console_user = SimpleNamespace(name="王五")
            html = render_template_string(page)
        assert '<span class="who" id="signed-in-user"' in html and "王五</span>" in html, language
        assert f'<form method="post" action="{logout}"' in html and f">{sign_out}</button>" in html, language
    # The sign-out's words are the console login's, not a copy in a service's catalogue.
    assert {key for key in app.extensions["xsn_i18n"]["zh"] if key.endswith("sign_out")} == {"console.sign_out"}
