"""identity.oauth.api._token_form parses a token request's body as ``request.form`` would."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import RequestEntityTooLarge

from identity.oauth.api import _token_form

FORM = "application/x-www-form-urlencoded"
BODIES = [
    (b"grant_type=client_credentials&scope=a+b&resource=xsn%3Aseal&resource=xsn:licenses", FORM),
    (b"grant_type=&client_id=x&client_id=y&empty&=v&%zz=%e4%b8%ad", FORM),
    (b"a=1;b=2&c=%FF%FE", f"{FORM}; charset=utf-8"),
    (b"grant_type=\xff\xfe", FORM),  # not UTF-8: an empty form
    (b'{"grant_type": "client_credentials"}', "application/json"),
    (b"grant_type=client_credentials", "text/plain"),
    (b"", FORM),
]


@pytest.mark.parametrize(("body", "content_type"), BODIES)
def test_same_form_as_werkzeug(app, body, content_type):
    def form(parse):
        with app.test_request_context("/oauth/token", method="POST", data=body, content_type=content_type):
            return list(parse().items(multi=True))

    from flask import request

    assert form(_token_form) == form(lambda: request.form)


def test_body_over_the_limit_is_413(identity_app):
    app = identity_app(MAX_CONTENT_LENGTH=16)
    with app.test_request_context("/oauth/token", method="POST", data=b"grant_type=client_credentials",
                                  content_type=FORM), \
            pytest.raises(RequestEntityTooLarge):
        _token_form()


def test_form_stays_readable_for_authlib(app):
    from flask import request

    with app.test_request_context("/oauth/token", method="POST", data=b"grant_type=password&username=u",
                                  content_type=FORM):
        assert _token_form()["grant_type"] == "password"
        assert request.form.to_dict() == {"grant_type": "password", "username": "u"}
