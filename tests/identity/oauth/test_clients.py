"""Client registration: validation, secrets (shown once, keyed hash), rotation, disabling,
the admin REST API (``/admin/clients``, scope ``identity:admin``) and the ``xsn identity`` CLI."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from common.crypto.gm import hmac_sm3
from common.crypto.keystore import load_kek
from common.db import get_db
from common.ops.cli import main
from identity.oauth import clients
from identity.oauth.models import OAuthClient, RefreshToken
from identity.oauth.seed import demo_secret
from tests.support.oauth import REDIRECT, Browser, pkce_pair, register
from tests.support.suite import TokenFactory

KEK = bytes.fromhex("00112233445566778899aabbccddeeff")
LI = "13900005678"


def spec(**changes) -> clients.ClientSpec:
    return clients.ClientSpec(**{"name": "应用", "redirect_uris": ["https://app.example/cb"], **changes})


# -- validation (no app needed) ------------------------------------------------------------
@pytest.mark.parametrize("uri", [
    "https://app.example/cb", "https://app.example:8443/cb?x=1", "http://127.0.0.1:8765/callback",
    "http://localhost/cb", "http://[::1]:9000/cb",
])
def test_acceptable_redirect_uris(uri):
    clients.validate_spec(spec(redirect_uris=[uri], post_logout_redirect_uris=[uri]))


@pytest.mark.parametrize("uri", [
    "http://app.example/cb",  # plain http off loopback
    "http://localhost.evil.example/cb", "http://127.0.0.1.evil.example/cb",
    "https://app.example/cb#frag", "https://app.example/cb#",  # fragments, even empty
    "/relative/cb", "app.example/cb", "https:///cb", "https://:443/cb",
    "javascript:alert(1)", "data:text/html,x", "ftp://app.example/cb", "custom-scheme:/cb",
    "https://user:pass@app.example/cb", "https://app.example@evil.example/cb",  # userinfo tricks
    "https://app.example/c b", "https://app.example/cb\n", " https://app.example/cb",
    "https://app.example:99999/cb", "",
])
def test_refused_redirect_uris(uri):
    with pytest.raises(clients.InvalidClientMetadata) as raised:
        clients.validate_spec(spec(redirect_uris=[uri]))
    assert raised.value.status == 422
    with pytest.raises(clients.InvalidClientMetadata):
        clients.validate_spec(spec(post_logout_redirect_uris=[uri]))


@pytest.mark.parametrize("changes, field", [
    ({"grant_types": ["password"]}, "grant_types"),
    ({"grant_types": ["implicit", "authorization_code"]}, "grant_types"),
    ({"grant_types": []}, "grant_types"),
    ({"client_type": "public", "grant_types": ["client_credentials"]}, "grant_types"),
    ({"redirect_uris": []}, "redirect_uris"),  # authorization_code needs one
    ({"scopes": ["openid", "Bad Scope"]}, "scopes"),
    ({"scopes": [""]}, "scopes"),
    ({"audiences": ["https://evil.example"]}, "audiences"),
    ({"audiences": ["xsn:"]}, "audiences"),
    ({"client_type": "spa"}, "client_type"),
    ({"client_id": "a b"}, "client_id"),
    ({"client_id": "x"}, "client_id"),
    ({"name": "  "}, "name"),
    ({"access_token_lifetime": 5}, "access_token_lifetime"),
    ({"refresh_token_lifetime": 10}, "refresh_token_lifetime"),
    ({"min_acr": 5}, "min_acr"),
    ({"id_token_alg": "none"}, "id_token_alg"),
    ({"id_token_alg": "HS256"}, "id_token_alg"),
])
def test_refused_client_metadata(changes, field):
    with pytest.raises(clients.InvalidClientMetadata) as raised:
        clients.validate_spec(spec(**changes))
    assert field in raised.value.extra["errors"]


def test_client_credentials_only_client_needs_no_redirect_uri():
    clients.validate_spec(spec(redirect_uris=[], grant_types=["client_credentials"], scopes=["seal:sign"],
                               audiences=["xsn:seal"]))


# -- registry on a database ------------------------------------------------------------------
def test_secret_is_shown_once_and_stored_as_a_keyed_hash(app, db):
    client, secret = clients.register_client(db, KEK, spec(client_id="app-one"))
    db.commit()
    assert secret and len(secret) >= 43  # 256 bits, URL-safe
    stored = db.get(OAuthClient, "app-one").secret_hash
    assert secret not in stored
    assert stored != hashlib.sha256(secret.encode()).hexdigest()  # not an unkeyed hash
    assert stored == hmac_sm3(hmac_sm3(KEK, b"identity:client-secret"), secret.encode()).hex()
    assert clients.check_secret(clients.secret_hash_key(KEK), stored, secret)
    assert not clients.check_secret(clients.secret_hash_key(bytes(16)), stored, secret)  # another KEK
    assert not clients.check_secret(clients.secret_hash_key(KEK), stored, secret + "x")
    assert not clients.check_secret(clients.secret_hash_key(KEK), stored, "")
    # A public client has no secret at all and authenticates with 'none'.
    public, none = clients.register_client(db, KEK, spec(client_type="public"))
    assert none is None and public.secret_hash is None and public.token_endpoint_auth_method == "none"


def test_client_id_taken_is_a_conflict(app, db):
    clients.register_client(db, KEK, spec(client_id="app-two"))
    with pytest.raises(clients.Conflict) as raised:
        clients.register_client(db, KEK, spec(client_id="app-two"))
    assert raised.value.code == "client_exists"


def test_mismatched_auth_method_refused(app, db):
    with pytest.raises(clients.InvalidClientMetadata):
        clients.register_client(db, KEK, spec(client_type="public", token_endpoint_auth_method="client_secret_basic"))
    with pytest.raises(clients.InvalidClientMetadata):
        clients.register_client(db, KEK, spec(token_endpoint_auth_method="none"))


def cc_token(app, client_id, secret, **data):
    return app.test_client().post("/oauth/token", data={"grant_type": "client_credentials", **data},
                                  auth=(client_id, secret))


def test_rotated_secret_replaces_the_old_one_at_once(app):
    client_id, old = register(app, grant_types=["client_credentials"], redirect_uris=[], scopes=["seal:sign"],
                              audiences=["xsn:seal"])
    assert cc_token(app, client_id, old).status_code == 200
    with app.app_context(), get_db(app).session() as session:
        new = clients.rotate_secret(session, load_kek(app.config), client_id)
        session.commit()
        public, _ = clients.register_client(session, load_kek(app.config), spec(client_type="public"))
        with pytest.raises(clients.InvalidClientMetadata):
            clients.rotate_secret(session, load_kek(app.config), public.client_id)
        with pytest.raises(clients.ClientNotFound):
            clients.rotate_secret(session, load_kek(app.config), "no-such-client")
    assert new != old
    assert cc_token(app, client_id, old).get_json()["error"] == "invalid_client"
    assert cc_token(app, client_id, new).status_code == 200


@pytest.fixture
def seeded_app(seeded_identity_app):
    return seeded_identity_app(OAUTH_ISSUER="https://gov.example/identity")


def introspect(app, token, hint=None):
    with app.app_context():
        secret = demo_secret(load_kek(app.config), "xsn-gateway")
    data = {"token": token, **({"token_type_hint": hint} if hint else {})}
    return app.test_client().post("/oauth/introspect", data=data, auth=("xsn-gateway", secret)).get_json()


def test_disabled_client_tokens_stop_working_at_identity(seeded_app):
    app = seeded_app
    client_id, secret = register(app, skip_consent=True)
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge, scope="openid profile offline_access")
    body = app.test_client().post("/oauth/token", auth=(client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier}).get_json()
    assert introspect(app, body["access_token"])["active"] is True
    assert introspect(app, body["refresh_token"], "refresh_token")["active"] is True

    with app.app_context(), get_db(app).session() as session:
        clients.disable_client(session, client_id)
        session.commit()
        assert all(row.revoked_at for row in session.scalars(select(RefreshToken).where(
            RefreshToken.client_id == client_id)))

    assert introspect(app, body["access_token"]) == {"active": False}
    assert introspect(app, body["refresh_token"], "refresh_token") == {"active": False}
    refused = app.test_client().post("/oauth/token", auth=(client_id, secret), data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert refused.status_code in (400, 401) and refused.get_json()["error"] in ("invalid_client", "invalid_grant")
    info = app.test_client().get("/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 401 and info.get_json()["error"] == "invalid_token"
    # The disabled client can no longer start an authorization either (not redirected anywhere).
    response = browser.client.get(browser.authorize_url(client_id, challenge=challenge))
    assert response.status_code == 400 and "Location" not in response.headers


# -- admin REST API --------------------------------------------------------------------------
@pytest.fixture
def admin(app):
    tokens = TokenFactory()
    tokens.install(app)
    http = app.test_client()

    def call(method, path, scope="identity:admin", token=True, **kwargs):
        headers = tokens.bearer(scope=scope, sub="admin-1", aud="xsn:identity") if token else {}
        return http.open(path, method=method, headers=headers, **kwargs)

    return call


def is_problem(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    if code:
        assert response.get_json()["code"] == code


NEW_CLIENT = {"name": "不动产登记", "client_id": "app-estate", "redirect_uris": ["https://estate.example/cb"],
              "post_logout_redirect_uris": ["https://estate.example/"], "scopes": ["openid", "profile", "idcard"],
              "audiences": ["xsn:licenses"], "min_acr": 2}


def test_admin_api_create_list_get_rotate_disable(app, admin):
    created = admin("POST", "/admin/clients/", json=NEW_CLIENT)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    secret = body["client_secret"]
    assert body["client_id"] == "app-estate" and secret and body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["min_acr"] == 2 and body["disabled_at"] is None

    listed = admin("GET", "/admin/clients/")
    assert listed.status_code == 200
    assert [c["client_id"] for c in listed.get_json()] == ["app-estate"]
    got = admin("GET", "/admin/clients/app-estate")
    assert got.status_code == 200 and got.get_json()["redirect_uris"] == ["https://estate.example/cb"]
    for response in (listed, got):  # the secret (or its hash) is never shown again
        text = response.get_data(as_text=True)
        assert secret not in text and "client_secret\"" not in text and "secret_hash" not in text

    rotated = admin("POST", "/admin/clients/app-estate/secret")
    assert rotated.status_code == 200
    new = rotated.get_json()["client_secret"]
    assert new != secret
    with app.app_context(), get_db(app).session() as session:
        stored = session.get(OAuthClient, "app-estate").secret_hash
        assert clients.check_secret(clients.secret_hash_key(KEK), stored, new)
        assert not clients.check_secret(clients.secret_hash_key(KEK), stored, secret)

    disabled = admin("DELETE", "/admin/clients/app-estate")
    assert disabled.status_code == 200 and disabled.get_json()["disabled_at"]
    again = admin("DELETE", "/admin/clients/app-estate")  # idempotent: the first time stays
    assert again.status_code == 200 and again.get_json()["disabled_at"] == disabled.get_json()["disabled_at"]

    public = admin("POST", "/admin/clients/", json={"name": "小程序", "client_type": "public",
                                                   "redirect_uris": ["http://127.0.0.1:9000/cb"]})
    assert public.status_code == 201
    assert public.get_json()["client_secret"] is None and public.get_json()["token_endpoint_auth_method"] == "none"
    is_problem(admin("POST", f"/admin/clients/{public.get_json()['client_id']}/secret"), 422,
               "invalid_client_metadata")


def test_admin_api_needs_a_token_with_the_admin_scope(app, admin):
    for method, path in (("GET", "/admin/clients/"), ("POST", "/admin/clients/"), ("GET", "/admin/clients/x"),
                         ("DELETE", "/admin/clients/x"), ("POST", "/admin/clients/x/secret")):
        kwargs = {"json": NEW_CLIENT} if method == "POST" else {}
        is_problem(admin(method, path, token=False, **kwargs), 401, "token_missing")
        is_problem(admin(method, path, scope="identity:read", **kwargs), 403, "insufficient_scope")
    with app.app_context(), get_db(app).session() as session:
        assert clients.list_clients(session) == []


@pytest.mark.parametrize("body, field", [
    ({**NEW_CLIENT, "redirect_uris": ["http://estate.example/cb"]}, "redirect_uris"),
    ({**NEW_CLIENT, "redirect_uris": ["https://estate.example/cb#x"]}, "redirect_uris"),
    ({**NEW_CLIENT, "grant_types": ["password"]}, "grant_types"),
    ({**NEW_CLIENT, "scopes": ["OPENID"]}, "scopes"),
    ({**NEW_CLIENT, "audiences": ["licenses"]}, "audiences"),
    ({**NEW_CLIENT, "client_type": "spa"}, "client_type"),
    ({**NEW_CLIENT, "access_token_lifetime": "soon"}, "access_token_lifetime"),
    ({**NEW_CLIENT, "secret_hash": "00"}, "secret_hash"),  # unknown fields are refused, not ignored
    ({key: value for key, value in NEW_CLIENT.items() if key != "name"}, "name"),
])
def test_admin_api_bad_input_is_problem_json_and_writes_nothing(app, admin, body, field):
    response = admin("POST", "/admin/clients/", json=body)
    is_problem(response, 422)
    assert field in json.dumps(response.get_json())
    with app.app_context(), get_db(app).session() as session:
        assert clients.list_clients(session) == []


def test_admin_api_unknown_client_and_duplicate_id(app, admin):
    for method, path in (("GET", "/admin/clients/nope"), ("DELETE", "/admin/clients/nope"),
                         ("POST", "/admin/clients/nope/secret")):
        is_problem(admin(method, path), 404, "client_not_found")
    assert admin("POST", "/admin/clients/", json=NEW_CLIENT).status_code == 201
    is_problem(admin("POST", "/admin/clients/", json=NEW_CLIENT), 409, "client_exists")


# -- CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(app, tmp_path):
    return {"XSN_IDENTITY_DATABASE_URL": app.config["DATABASE_URL"], "XSN_KEK": app.config["KEK"],
            "XSN_VAR_DIR": str(tmp_path / "cli-var")}


def test_cli_creates_and_lists_clients(app, cli_env):
    runner = CliRunner()
    created = runner.invoke(main, ["identity", "clients", "create", "--name", "CLI 应用", "--client-id", "app-cli",
                                   "--redirect-uri", "https://cli.example/cb", "--scope", "openid",
                                   "--scope", "profile", "--min-acr", "2", "--json"], env=cli_env)
    assert created.exit_code == 0, created.output
    result = json.loads(created.output.strip().splitlines()[-1])
    assert result["client_id"] == "app-cli" and result["client_secret"]
    with app.app_context(), get_db(app).session() as session:
        row = session.get(OAuthClient, "app-cli")
        assert row.min_acr == 2 and row.redirect_uris == ["https://cli.example/cb"]
        assert clients.check_secret(clients.secret_hash_key(KEK), row.secret_hash, result["client_secret"])

    plain = runner.invoke(main, ["identity", "clients", "create", "--name", "公众端", "--type", "public",
                                 "--redirect-uri", "http://127.0.0.1:9000/cb"], env=cli_env)
    assert plain.exit_code == 0, plain.output
    assert "client_id:" in plain.output and "client_secret" not in plain.output

    bad = runner.invoke(main, ["identity", "clients", "create", "--name", "x",
                               "--redirect-uri", "http://evil.example/cb"], env=cli_env)
    assert bad.exit_code != 0 and "loopback" in bad.output
    dup = runner.invoke(main, ["identity", "clients", "create", "--name", "x", "--client-id", "app-cli",
                               "--redirect-uri", "https://cli.example/cb"], env=cli_env)
    assert dup.exit_code != 0 and "already exists" in dup.output

    with app.app_context(), get_db(app).session() as session:
        clients.disable_client(session, "app-cli")
        session.commit()
    listed = runner.invoke(main, ["identity", "clients", "list"], env=cli_env)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert len(lines) == 2
    cli_line = next(line for line in lines if line.startswith("app-cli"))
    assert "disabled" in cli_line and "CLI 应用" in cli_line
    assert any("public" in line and "公众端" in line for line in lines)
    assert result["client_secret"] not in listed.output


def test_cli_rotates_the_signing_keys(app, cli_env):
    from identity.oauth import tokens

    with app.app_context(), get_db(app).session() as session:
        tokens.ensure_keys(session, KEK)
        session.commit()
        (next_key,) = tokens.key_rows(session, "ES256", tokens.NEXT)
        (old_active,) = tokens.key_rows(session, "ES256", tokens.ACTIVE)
        next_kid, old_kid = next_key.kid, old_active.kid
    result = CliRunner().invoke(main, ["identity", "keys", "rotate"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"active ES256 key: {next_kid}"  # the already-published next key
    published = {k["kid"] for k in app.test_client().get("/jwks.json").get_json()["keys"]}
    with app.app_context(), get_db(app).session() as session:
        assert session.get(tokens.SigningKey, old_kid).status == tokens.RETIRED
        (new_next,) = tokens.key_rows(session, "ES256", tokens.NEXT)
    assert {next_kid, old_kid, new_next.kid} <= published  # old kept, new next published before use
