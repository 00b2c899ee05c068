"""Demo OAuth clients and signing keys (idempotent), run by ``xsn seed`` through identity.seed.

Each of our services is a confidential client for service-to-service calls. In the embedded
setup their secrets are derived from the KEK (deterministic, so a re-seed keeps them) and
written to ``var/clients.json`` for the launcher and the end-to-end tests; no secret is in
the source. In production no demo client is seeded: register clients with the CLI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog
from flask import Flask

from common.crypto.gm import hmac_sm3
from common.crypto.keystore import load_kek
from common.db import get_db
from identity.oauth import clients, tokens
from identity.oauth.models import OAuthClient

logger = structlog.get_logger("xsn.identity.oauth.seed")

# client_id -> (scopes, audiences) of our own services' client-credentials clients.
SERVICE_CLIENTS: dict[str, tuple[list[str], list[str]]] = {
    "licenses": (["seal:sign", "seal:read", "messaging:send", "payment:read"],
                 ["xsn:seal", "xsn:messaging", "xsn:payment"]),
    "seal": (["messaging:send", "licenses:read"], ["xsn:messaging", "xsn:licenses"]),
    "payment": (["seal:sign", "seal:read", "messaging:send", "licenses:read"],
                ["xsn:seal", "xsn:messaging", "xsn:licenses"]),
    # The hub's directory reads people (POST /api/v1/people/lookup) with mobile and e-mail unmasked.
    "messaging": (["identity:people:read", "phone:full", "email:full"], ["xsn:identity"]),
    # Identity itself sends password-reset SMS through the hub (template password_reset).
    "identity": (["messaging:send"], ["xsn:messaging"]),
    # tokens:revocations: the gateway polls GET /oauth/revocations (identity.oauth.revocations).
    "gateway": (["identity:introspect", "tokens:revocations"],
                ["xsn:identity", "xsn:licenses", "xsn:seal", "xsn:payment", "xsn:messaging"]),
}
# Demo callers of the new services (client credentials, no person): a department's own
# system issuing licences and collecting fees, a service window checking licences, an app
# sending messages through the hub.
DEMO_MACHINE_CLIENTS: dict[str, tuple[str, list[str], list[str]]] = {
    "xsn-dept-market": ("市场监管局业务系统 (demo)",
                        ["licenses:issue", "licenses:read", "seal:sign", "payment:collect"],
                        ["xsn:licenses", "xsn:seal", "xsn:payment"]),
    "xsn-window-demo": ("政务服务窗口 (demo)", ["licenses:verify", "payment:read"], ["xsn:licenses", "xsn:payment"]),
    "xsn-demo-sender": ("消息发送应用 (demo)", ["messaging:send"], ["xsn:messaging"]),
    # The approval bureau's own system (licenses.config LICENSES_ISSUER_CLIENTS maps it to the bureau).
    "xsn-licenses-demo-issuer": ("行政审批服务局证照系统 (demo)", ["licenses:issue"], ["xsn:licenses"]),
}
# The admin client (CLI and tests) administers every node.
ADMIN_SCOPES = ["identity:admin", "licenses:admin", "payment:admin", "messaging:admin"]
ADMIN_AUDIENCES = ["xsn:identity", "xsn:licenses", "xsn:payment", "xsn:messaging"]
ADMIN_CLIENT = "xsn-admin"
DEMO_APP = "xian-demo-app"
DEMO_APP_PORT = 8765
# The seal node's staff consoles sign people in here (common.web.console_login). A client of its
# own, not the seal service's client-credentials client ``xsn-seal``: that one would then be
# able to mint itself seal:admin / audit:read without any person, and people's console tokens
# would carry the service's other audiences.
SEAL_CONSOLE = "xsn-seal-console"
SEAL_CONSOLE_PATHS = ("/seal/manage", "/seal/audit")
# A person's own message inbox (messaging.pages), signed in like the seal consoles.
MESSAGING_INBOX = "xsn-messaging-inbox"
# A holder's own licences (licenses.holder_pages), signed in like the inbox. Not skip_consent: the
# person agrees, once, that the licences node reads their ID number and organisations (idcard:full
# org, through userinfo: the token's openid adds xsn:identity) to find what they hold.
LICENSES_HOLDER = "xsn-licenses-holder"
# The gateway's auditor console (gateway.audit.pages): the gateway's audit log and seal's signature log.
GATEWAY_CONSOLE = "xsn-gateway-console"
# Audit tooling (scripts, the CLI against a running node): a machine client reading the log.
AUDITOR_CLIENT = "xsn-auditor"


def demo_secret(kek: bytes, client_id: str) -> str:
    """Deterministic per KEK, so re-seeding keeps the secrets the running suite knows."""
    return hmac_sm3(kek, f"identity:demo-client-secret:{client_id}".encode()).hex()


def _specs(public_base_url: str) -> list[clients.ClientSpec]:
    specs = [clients.ClientSpec(name=f"xsn {service}", client_id=f"xsn-{service}", grant_types=["client_credentials"],
                                scopes=scopes, audiences=audiences, access_token_lifetime=600)
             for service, (scopes, audiences) in SERVICE_CLIENTS.items()]
    specs.append(clients.ClientSpec(name="xsn admin (CLI and tests)", client_id=ADMIN_CLIENT,
                                    grant_types=["client_credentials"], scopes=list(ADMIN_SCOPES),
                                    audiences=list(ADMIN_AUDIENCES), access_token_lifetime=300))
    specs += [clients.ClientSpec(name=name, client_id=client_id, grant_types=["client_credentials"], scopes=scopes,
                                 audiences=audiences, access_token_lifetime=600)
              for client_id, (name, scopes, audiences) in DEMO_MACHINE_CLIENTS.items()]
    redirects = [f"http://127.0.0.1:{DEMO_APP_PORT}/callback", f"http://localhost:{DEMO_APP_PORT}/callback"]
    specs.append(clients.ClientSpec(
        name="西安政务演示应用", client_id=DEMO_APP, client_type="public", redirect_uris=redirects,
        post_logout_redirect_uris=[f"http://127.0.0.1:{DEMO_APP_PORT}/", f"http://localhost:{DEMO_APP_PORT}/"],
        grant_types=["authorization_code", "refresh_token"],
        # licenses:holder with idcard:full: the licences node finds what a person holds by ID number.
        scopes=["openid", "profile", "phone", "idcard", "idcard:full", "org", "offline_access", "licenses:holder"],
        audiences=["xsn:licenses"]))
    base = public_base_url.rstrip("/")
    # No refresh_token grant: the console keeps no long-lived credential; an expired access
    # token sends the person back through authorize, silent while their login here lasts.
    specs.append(clients.ClientSpec(
        name="电子印章管理与审计控制台", client_id=SEAL_CONSOLE, grant_types=["authorization_code"],
        redirect_uris=[f"{base}{path}/callback" for path in SEAL_CONSOLE_PATHS],
        post_logout_redirect_uris=[f"{base}{path}/signed-out" for path in SEAL_CONSOLE_PATHS],
        scopes=["openid", "profile", "staff", "seal:admin", "audit:read"], audiences=["xsn:seal"],
        access_token_lifetime=900, skip_consent=True))
    specs.append(clients.ClientSpec(
        name="我的消息", client_id=MESSAGING_INBOX, grant_types=["authorization_code"],
        redirect_uris=[f"{base}/messaging/me/callback"], post_logout_redirect_uris=[f"{base}/messaging/me/signed-out"],
        scopes=["openid", "profile", "messaging:inbox"], audiences=["xsn:messaging"], access_token_lifetime=900,
        skip_consent=True))
    specs.append(clients.ClientSpec(
        name="我的证照", client_id=LICENSES_HOLDER, grant_types=["authorization_code"],
        redirect_uris=[f"{base}/licenses/me/callback"], post_logout_redirect_uris=[f"{base}/licenses/me/signed-out"],
        scopes=["openid", "profile", "idcard:full", "org", "licenses:holder"], audiences=["xsn:licenses"],
        access_token_lifetime=900))
    # The gateway's auditor console (gateway/audit/pages.py): people sign in, read the audit log.
    specs.append(clients.ClientSpec(
        name="统一审计控制台", client_id=GATEWAY_CONSOLE, grant_types=["authorization_code"],
        redirect_uris=[f"{base}/gateway/audit/console/callback"],
        post_logout_redirect_uris=[f"{base}/gateway/audit/console/signed-out"],
        scopes=["openid", "profile", "staff", "audit:read"], audiences=["xsn:gateway"],
        access_token_lifetime=900, skip_consent=True))
    # xsn:gateway: audit tooling reads the gateway's auditor API; the gateway's console reads seal's log with it.
    specs.append(clients.ClientSpec(name="签章日志审计工具", client_id=AUDITOR_CLIENT,
                                    grant_types=["client_credentials"], scopes=["audit:read"],
                                    audiences=["xsn:seal", "xsn:gateway"], access_token_lifetime=300))
    return specs


def seed(app: Flask) -> None:
    kek = load_kek(app.config)
    secrets_out: dict[str, dict[str, str]] = {}
    with get_db(app).session() as session:
        tokens.ensure_keys(session, kek)
        if app.config.get("ENV") == "production" or not app.config.get("OAUTH_DEMO_CLIENT_SECRETS"):
            session.commit()
            return
        key = clients.secret_hash_key(kek)
        for spec in _specs(app.config["PUBLIC_BASE_URL"]):
            try:
                clients.validate_spec(spec)
            except clients.InvalidClientMetadata as exc:  # e.g. a plain-http public URL off loopback
                logger.warning("demo_client_skipped", client_id=spec.client_id, reason=exc.detail)
                continue
            secret = demo_secret(kek, spec.client_id) if spec.client_type == "confidential" else None
            existing = session.get(OAuthClient, spec.client_id)
            if existing is None:
                clients.register_client(session, kek, spec, secret=secret)
            else:
                if secret and not clients.check_secret(key, existing.secret_hash, secret):
                    existing.secret_hash = clients.hash_secret(key, secret)  # the KEK changed since
                # Scopes grow with the node (a re-seed gives an existing client the new ones).
                existing.scopes = list(dict.fromkeys([*existing.scopes, *spec.scopes]))
                existing.audiences = list(dict.fromkeys([*existing.audiences, *spec.audiences]))
                # The gateway's public URL may have changed since (another port): follow it.
                existing.redirect_uris = list(spec.redirect_uris)
                existing.post_logout_redirect_uris = list(spec.post_logout_redirect_uris)
            if secret:
                secrets_out[spec.client_id] = {"client_secret": secret}
        session.commit()
    path = Path(app.config["VAR_DIR"]) / "clients.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(secrets_out, handle, indent=2, sort_keys=True)
    logger.info("oauth_clients_seeded", clients=len(secrets_out) + 1, secrets_file=str(path))
