"""Demo clients of the staff consoles and audit tooling, and staff scopes no one holds yet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from common.db import get_db
from identity import accounts
from identity import claims as claim_rules
from identity.oauth.models import OAuthClient
from identity.oauth.seed import AUDITOR_CLIENT, SEAL_CONSOLE
from identity.seed import DEMO_PEOPLE
from tests.support.oauth import REDIRECT, Browser, pkce_pair, register

PUBLIC = "http://127.0.0.1:18000"
ZHANG = "13800001234"  # a citizen without any staff grant


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app(PUBLIC_BASE_URL=PUBLIC)


def test_seal_console_and_auditor_clients_are_seeded(app):
    with app.app_context(), get_db(app).session() as session:
        console = session.get(OAuthClient, SEAL_CONSOLE)
        assert console.redirect_uris == [f"{PUBLIC}/seal/manage/callback", f"{PUBLIC}/seal/audit/callback"]
        assert console.post_logout_redirect_uris == [f"{PUBLIC}/seal/manage/signed-out",
                                                     f"{PUBLIC}/seal/audit/signed-out"]
        assert console.grant_types == ["authorization_code"] and console.client_type == "confidential"
        assert {"openid", "seal:admin", "audit:read"} <= set(console.scopes) and console.audiences == ["xsn:seal"]
        auditor = session.get(OAuthClient, AUDITOR_CLIENT)
        assert auditor.grant_types == ["client_credentials"] and auditor.scopes == ["audit:read"]
        staff = accounts.find_person_by_id_number(session, DEMO_PEOPLE[2]["id_number"])
        assert {"seal:admin", "audit:read"} <= claim_rules.staff_scopes(session, staff)
    secrets = json.loads((Path(app.config["VAR_DIR"]) / "clients.json").read_text())
    assert {SEAL_CONSOLE, AUDITOR_CLIENT} <= set(secrets)
    response = app.test_client().post("/oauth/token", auth=(AUDITOR_CLIENT, secrets[AUDITOR_CLIENT]["client_secret"]),
                                      data={"grant_type": "client_credentials"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["scope"] == "audit:read"


def test_reseeding_follows_a_new_public_url(app):
    from identity.oauth.seed import seed

    app.config["PUBLIC_BASE_URL"] = "http://127.0.0.1:18001"
    with app.app_context():
        seed(app)
    with app.app_context(), get_db(app).session() as session:
        assert session.get(OAuthClient, SEAL_CONSOLE).redirect_uris[0] == "http://127.0.0.1:18001/seal/manage/callback"


def test_a_staff_scope_no_one_holds_yet_is_not_given_to_everyone(app):
    """``payment:reconcile`` belongs to the finance role, which no demo person has been given."""
    client_id, secret = register(app, skip_consent=True, scopes=["openid", "payment:reconcile"])
    browser = Browser(app)
    browser.login(ZHANG)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge, scope="openid payment:reconcile")
    body = app.test_client().post("/oauth/token", auth=(client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier})
    keys = KeySet.import_key_set(app.test_client().get("/jwks.json").get_json())
    assert jwt.decode(body.get_json()["access_token"], keys).claims["scope"] == "openid"
