"""The direct client-credentials path (identity.oauth.client_credentials): for a valid request it
answers what Authlib answers; for anything else it steps aside and Authlib answers, errors included."""

from __future__ import annotations

import pytest

from identity.oauth import client_credentials
from identity.oauth.context import state
from tests.support.oauth import ISSUER, decode, register

CHANGING = ("jti", "iat", "nbf", "exp")  # differ between any two tokens


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app(OAUTH_ISSUER=ISSUER)


@pytest.fixture
def machine(app):
    spec = {"grant_types": ["client_credentials"], "redirect_uris": [], "post_logout_redirect_uris": [],
            "scopes": ["seal:sign", "licenses:read", "phone:full", "openid"], "audiences": ["xsn:seal", "xsn:licenses"]}
    basic = register(app, **spec)
    post = register(app, **spec, token_endpoint_auth_method="client_secret_post")
    return basic, post


@pytest.fixture
def calls(monkeypatch):
    """What the direct path answered: the client id it issued to, or None (handed to Authlib)."""
    seen: list = []
    real = client_credentials.issue

    def spy(**kwargs):
        issued = real(**kwargs)
        seen.append(issued[0].client_id if issued else None)
        return issued

    monkeypatch.setattr(client_credentials, "issue", spy)
    return seen


def _post(app, data, auth=None, query=""):
    return app.test_client().post(f"/oauth/token{query}", data=data, auth=auth)


def _by_authlib(app, monkeypatch, data, auth=None):
    with monkeypatch.context() as patch:
        patch.setattr(client_credentials, "issue", lambda **_kwargs: None)
        return _post(app, data, auth)


VALID = [
    ({"grant_type": "client_credentials"}, "basic"),
    ({"grant_type": "client_credentials", "scope": "seal:sign"}, "basic"),
    ({"grant_type": "client_credentials", "resource": "xsn:seal"}, "basic"),
    ({"grant_type": "client_credentials", "audience": "xsn:licenses", "resource": "xsn:seal"}, "basic"),
    ({"grant_type": "client_credentials", "scope": "phone:full licenses:read"}, "post"),
]


@pytest.mark.parametrize(("data", "how"), VALID)
def test_a_valid_request_gets_what_authlib_would_give(app, machine, calls, monkeypatch, data, how):
    (basic_id, basic_secret), (post_id, post_secret) = machine
    if how == "basic":
        client_id, auth, form = basic_id, (basic_id, basic_secret), dict(data)
    else:
        client_id, auth, form = post_id, None, {**data, "client_id": post_id, "client_secret": post_secret}
    direct = _post(app, form, auth)
    assert calls == [client_id]  # served by the direct path
    reference = _by_authlib(app, monkeypatch, form, auth)
    assert direct.status_code == reference.status_code == 200
    for header in ("Content-Type", "Cache-Control", "Pragma"):
        assert direct.headers[header] == reference.headers[header]
    ours, theirs = direct.get_json(), reference.get_json()
    assert set(ours) == set(theirs) and {k: v for k, v in ours.items() if k != "access_token"} == \
        {k: v for k, v in theirs.items() if k != "access_token"}
    claims, expected = decode(app, ours["access_token"]), decode(app, theirs["access_token"])
    assert {k: v for k, v in claims.items() if k not in CHANGING} == \
        {k: v for k, v in expected.items() if k not in CHANGING}
    assert claims["jti"] != expected["jti"] and claims["sub"] == client_id


REFUSED = [
    ({"grant_type": "client_credentials"}, ("basic", "wrong-secret"), ""),
    ({"grant_type": "client_credentials"}, ("nobody", "secret"), ""),
    ({"grant_type": "client_credentials"}, None, ""),
    ({"grant_type": "client_credentials", "scope": "openid"}, "basic", ""),  # a person's scope
    ({"grant_type": "client_credentials", "scope": "seal:admin"}, "basic", ""),
    ({"grant_type": "client_credentials", "resource": "xsn:payment"}, "basic", ""),
    # a client registered for HTTP Basic sending its secret in the form
    ({"grant_type": "client_credentials", "client_id": "BASIC_ID", "client_secret": "BASIC_SECRET"}, None, ""),
    ({"grant_type": "client_credentials"}, "basic", "?scope=seal:sign"),  # a query string: Authlib's
    ({"grant_type": "authorization_code", "code": "x"}, "basic", ""),
]


@pytest.mark.parametrize(("data", "auth", "query"), REFUSED)
def test_anything_else_is_answered_by_authlib(app, machine, calls, monkeypatch, data, auth, query):
    (basic_id, basic_secret), _post_client = machine
    auth = (basic_id, basic_secret) if auth == "basic" else (basic_id, auth[1]) if auth and auth[0] == "basic" \
        else auth
    data = {k: {"BASIC_ID": basic_id, "BASIC_SECRET": basic_secret}.get(v, v) for k, v in data.items()}
    response = _post(app, data, auth, query)
    assert calls in ([], [None])  # stepped aside (or never asked, for a query string)
    reference = _post(app, data, auth, query) if query else _by_authlib(app, monkeypatch, data, auth)
    assert response.status_code == reference.status_code
    if response.status_code != 200:
        assert response.get_json() == reference.get_json()
        assert response.headers.get("WWW-Authenticate") == reference.headers.get("WWW-Authenticate")


def test_a_disabled_client_or_new_secret_counts_at_the_next_request(app, machine):
    from common.crypto.keystore import load_kek
    from common.db import get_db
    from identity.oauth import clients

    (client_id, secret), _ = machine
    assert _post(app, {"grant_type": "client_credentials"}, (client_id, secret)).status_code == 200
    with app.app_context(), get_db(app).session() as session:
        new = clients.rotate_secret(session, load_kek(app.config), client_id)
        session.commit()
    assert _post(app, {"grant_type": "client_credentials"}, (client_id, secret)).status_code == 401
    assert _post(app, {"grant_type": "client_credentials"}, (client_id, new)).status_code == 200
    with app.app_context(), get_db(app).session() as session:
        clients.disable_client(session, client_id)
        session.commit()
    assert _post(app, {"grant_type": "client_credentials"}, (client_id, new)).status_code == 401


def test_the_directory_reuses_a_record_only_for_the_same_row(app, machine):
    (client_id, _), _ = machine
    directory = state(app).clients
    first = directory.get(client_id)
    assert directory.get(client_id) is first  # unchanged row: the same record
    assert directory.get("no-such-client") is None
