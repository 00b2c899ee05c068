"""Fixtures of the seal tests: an app trusting tests/conftest.py's ``tokens``, a seal with grants, key
material."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from common.crypto.gm import SM2PrivateKey
from seal import ca, ses


def _valid_code() -> str:
    from common.values.codes import CreditCode

    return CreditCode.build("91610113MA6TXX001").value


ORG_CODE = _valid_code()
ORG_NAME = "西安市示范科技有限公司"


@pytest.fixture
def app(make_app, tokens):
    app = make_app("seal")
    tokens.install(app)
    return app


@pytest.fixture
def admin(tokens):
    return tokens.bearer(sub="admin-1", scope="seal:admin", client_id="xsn-console")


@pytest.fixture
def signer_headers(tokens):
    return tokens.bearer(sub="svc-licenses", scope="seal:sign", client_id="xsn-licenses")


def make_granted_seal(client, admin: dict[str, str]) -> str:
    """A contract seal made through the API and granted to the client xsn-licenses; its id."""
    response = client.post("/seals", json={"org_code": ORG_CODE, "org_name": ORG_NAME, "kind": "contract"},
                           headers=admin)
    assert response.status_code == 201, response.get_json()
    sid = response.get_json()["id"]
    grant = client.post(f"/seals/{sid}/grants", json={"grantee_type": "client", "grantee": "xsn-licenses"},
                        headers=admin)
    assert grant.status_code == 201, grant.get_json()
    return sid


@pytest.fixture
def seal_id(client, admin):
    return make_granted_seal(client, admin)


class Material:
    """A maker, a seal and a signature built directly with the pure functions."""

    def __init__(self, *, seal_days: int = 365, signed_offset: timedelta = timedelta(0)) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.maker_key = SM2PrivateKey.generate()
        self.maker_der = ca.make_root(self.maker_key, common_name="测试制章者", not_before=self.now - timedelta(days=1),
                                      not_after=self.now + timedelta(days=3650))
        self.signer_key = SM2PrivateKey.generate()
        self.signer_der = ca.issue_signer(self.maker_key, self.maker_der, self.signer_key.public_key(),
                                          common_name="测试合同专用章", organization=ORG_NAME, org_code=ORG_CODE,
                                          not_before=self.now - timedelta(hours=1),
                                          not_after=self.now + timedelta(days=seal_days))
        from seal.images import generate_seal_png

        self.picture = generate_seal_png(ORG_NAME, "合同专用章", "6101260200000001")
        self.seal_der = ses.build_seal(maker_key=self.maker_key, maker_cert_der=self.maker_der,
                                       es_id="6101260200000001", name="测试合同专用章",
                                       signer_cert_der=self.signer_der, picture_png=self.picture, created=self.now,
                                       valid_start=self.now - timedelta(hours=1),
                                       valid_end=self.now + timedelta(days=seal_days))
        self.document = "合同正文".encode() * 10
        from common.crypto.gm import sm3

        self.digest = sm3(self.document)
        self.signed_at = self.now + signed_offset
        self.signature_der = ses.build_signature(signer_key=self.signer_key, signer_cert_der=self.signer_der,
                                                 seal_der=self.seal_der, time_info=self.signed_at,
                                                 data_hash=self.digest)

    def b64(self) -> str:
        return base64.b64encode(self.signature_der).decode()


@pytest.fixture(scope="session")
def material() -> Material:
    return Material()


@pytest.fixture
def make_material():
    return Material


# -- the domain modules called directly: a session, the KEK, a granted seal -------------------


@pytest.fixture
def kek(app) -> bytes:
    from common.crypto.keystore import load_kek

    return load_kek(app.config)


@pytest.fixture
def db(app):
    from common.db import get_db

    with get_db(app).session() as session:
        yield session


@pytest.fixture
def seal(db, kek):
    """An active contract seal granted to the licences node's client."""
    from seal import grants, seals
    from tests.seal.domain import LICENSES
    from tests.seal.domain import ORG_CODE as DOMAIN_ORG_CODE

    created = seals.create_seal(db, kek, org_code=DOMAIN_ORG_CODE, org_name=ORG_NAME, kind="contract",
                                actor="admin-1")
    grants.add_grant(db, created.id, "client", LICENSES.client_id, actor="admin-1")
    return created


# -- staff consoles signed in through a real identity node (common.web.console_login) ---------------
class Identity:
    def __init__(self, app, url: str) -> None:
        self.app, self.url = app, url

    def machine_token(self, scope: str) -> str:
        """A client-credentials token of a client registered for ``scope`` at ``xsn:seal``."""
        import requests

        from tests.support.oauth import register

        client_id, secret = register(self.app, name="测试工具", grant_types=["client_credentials"], scopes=[scope],
                                     audiences=["xsn:seal"], redirect_uris=[], post_logout_redirect_uris=[])
        response = requests.post(f"{self.url}/oauth/token", auth=(client_id, secret), timeout=10,
                                 data={"grant_type": "client_credentials", "scope": scope})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]


@pytest.fixture
def identity(make_app, serve_app) -> Identity:
    """A seeded identity node over HTTP whose public URL is :data:`GATEWAY` ``/identity``."""
    from identity.seed import seed
    from tests.support.console import GATEWAY, IDENTITY_TEST_CONFIG

    app = make_app("identity", PUBLIC_BASE_URL=GATEWAY, **IDENTITY_TEST_CONFIG)
    with app.app_context():
        seed(app)  # also writes var/clients.json with the console's secret, read by the seal app
    return Identity(app, serve_app(app))


@pytest.fixture
def console_app(make_app, identity):
    """The seal app trusting that identity node (no token factory: the real JWKS)."""
    from tests.support.console import GATEWAY

    return make_app("seal", PUBLIC_BASE_URL=GATEWAY, IDENTITY_URL=identity.url)


@pytest.fixture
def gateway_browser(console_app, identity):
    from tests.support.console import GatewayBrowser

    return lambda: GatewayBrowser(console_app, identity.url, service="seal")


@pytest.fixture
def console_seal_id(console_app, identity) -> str:
    """A contract seal granted to xsn-licenses, made through the API with a token from identity."""
    client = console_app.test_client()
    admin = {"Authorization": f"Bearer {identity.machine_token('seal:admin')}"}
    return make_granted_seal(client, admin)
