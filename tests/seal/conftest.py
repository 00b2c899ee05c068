"""Fixtures of the seal tests: an app with a token factory, a seal with grants, key material."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from common.gm import SM2PrivateKey
from common.testing import TokenFactory
from seal import ca, ses


def _valid_code() -> str:
    from common.codes import CreditCode

    return CreditCode.build("91610113MA6TXX001").value


ORG_CODE = _valid_code()
ORG_NAME = "西安市示范科技有限公司"


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
def app(make_app, tokens):
    app = make_app("seal")
    tokens.install(app)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin(tokens):
    return tokens.bearer(sub="admin-1", scope="seal:admin", client_id="xsn-console")


@pytest.fixture
def signer_headers(tokens):
    return tokens.bearer(sub="svc-licenses", scope="seal:sign", client_id="xsn-licenses")


@pytest.fixture
def seal_id(client, admin):
    response = client.post("/seals", json={"org_code": ORG_CODE, "org_name": ORG_NAME, "kind": "contract"},
                           headers=admin)
    assert response.status_code == 201, response.get_json()
    sid = response.get_json()["id"]
    grant = client.post(f"/seals/{sid}/grants", json={"grantee_type": "client", "grantee": "xsn-licenses"},
                        headers=admin)
    assert grant.status_code == 201, grant.get_json()
    return sid


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
        from common.gm import sm3

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
