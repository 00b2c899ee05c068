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


def _client_token(app, client_id: str, **data) -> object:
    secrets = json.loads((Path(app.config["VAR_DIR"]) / "clients.json").read_text())
    return app.test_client().post("/oauth/token", auth=(client_id, secrets[client_id]["client_secret"]),
                                  data={"grant_type": "client_credentials", **data})


def test_clients_of_the_new_nodes_are_seeded(app):
    """messaging.md, licenses.md and audit.md: the clients and scopes those nodes rely on."""
    from identity.oauth.seed import DEMO_APP, GATEWAY_CONSOLE, LICENSES_HOLDER, MESSAGING_INBOX

    with app.app_context(), get_db(app).session() as session:
        inbox = session.get(OAuthClient, MESSAGING_INBOX)
        assert inbox.redirect_uris == [f"{PUBLIC}/messaging/me/callback"]
        assert inbox.post_logout_redirect_uris == [f"{PUBLIC}/messaging/me/signed-out"]
        assert inbox.scopes == ["messaging:inbox", "openid", "profile"] and inbox.audiences == ["xsn:messaging"]
        holder = session.get(OAuthClient, LICENSES_HOLDER)
        assert holder.redirect_uris == [f"{PUBLIC}/licenses/me/callback"] and not holder.skip_consent
        assert holder.scopes == ["idcard:full", "licenses:holder", "openid", "org", "profile"]
        assert holder.audiences == ["xsn:licenses"]
        console = session.get(OAuthClient, GATEWAY_CONSOLE)
        assert console.redirect_uris == [f"{PUBLIC}/gateway/audit/console/callback"]
        assert console.scopes == ["audit:read", "openid", "profile", "staff"] and console.audiences == ["xsn:gateway"]
        assert session.get(OAuthClient, AUDITOR_CLIENT).audiences == ["xsn:gateway", "xsn:seal"]
        demo = session.get(OAuthClient, DEMO_APP)
        assert "licenses:holder" in demo.scopes and demo.audiences == ["xsn:licenses"]
    issuer = _client_token(app, "xsn-licenses-demo-issuer", scope="licenses:issue", resource="xsn:licenses")
    assert issuer.status_code == 200, issuer.get_json()
    sender = _client_token(app, "xsn-identity", scope="messaging:send", resource="xsn:messaging")
    assert sender.status_code == 200, sender.get_json()


def test_the_hub_reads_a_mobile_unmasked_but_gets_no_person_scope(app):
    """The hub's directory: ``identity:people:read phone:full`` by client credentials."""
    with app.app_context(), get_db(app).session() as session:
        person_id = accounts.find_person_by_id_number(session, DEMO_PEOPLE[0]["id_number"]).id
    granted = _client_token(app, "xsn-messaging", scope="identity:people:read phone:full")
    assert granted.status_code == 200, granted.get_json()
    token = granted.get_json()["access_token"]
    person = app.test_client().get(f"/api/v1/people/{person_id}", headers={"Authorization": f"Bearer {token}"})
    assert person.status_code == 200, person.get_json()
    assert person.get_json()["mobile"] == DEMO_PEOPLE[0]["mobile"]
    masked = _client_token(app, "xsn-messaging", scope="identity:people:read").get_json()["access_token"]
    person = app.test_client().get(f"/api/v1/people/{person_id}", headers={"Authorization": f"Bearer {masked}"})
    assert person.get_json()["mobile"] != DEMO_PEOPLE[0]["mobile"]
    # a scope it is not registered for stays refused (phone:full is the one person scope let through).
    refused = _client_token(app, "xsn-messaging", scope="identity:people:read openid")
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_scope"
