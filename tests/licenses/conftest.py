"""Fixtures of the licences tests: an app on in-memory seams, tokens, the demo catalogue.

The seal node, the message hub and identity's userinfo are the in-process implementations
(``LICENSES_*=memory``); ``test_seal_http.py`` runs the same issuance against the real seal
app over HTTP.
"""

from __future__ import annotations

from datetime import date

import pytest

from common.values.codes import CitizenId
from licenses import seed as demo
from licenses.config import APPROVAL_BUREAU, CIVIL_AFFAIRS, PUBLIC_SECURITY
from licenses.holders import Holder
from tests.support.suite import TokenFactory

ORG = demo.DEMO_ORGANISATION["credit_code"]
ZHANG = demo.DEMO_PEOPLE["张三"]
LI = demo.DEMO_PEOPLE["李四"]
ZHAO = demo.DEMO_PEOPLE["赵六"]
FOOD = demo.DEMO_TYPES[0]["code"]
RESIDENCE = demo.DEMO_TYPES[2]["code"]
BUREAU, POLICE, CIVIL = APPROVAL_BUREAU[1], PUBLIC_SECURITY[1], CIVIL_AFFAIRS[1]
ISSUER_CLIENT = "xsn-licenses-demo-issuer"
WINDOW_CLIENT = "window-app"


@pytest.fixture
def app(make_app, tokens):
    app = make_app("licenses", LICENSES_SEAL_CLIENT="memory", LICENSES_NOTIFIER="memory",
                   LICENSES_HOLDER_DIRECTORY="memory", RATELIMIT_ENABLED=False,
                   LICENSES_ISSUER_CLIENTS={ISSUER_CLIENT: BUREAU, "police-system": POLICE},
                   LICENSES_VERIFIER_CLIENTS={WINDOW_CLIENT: CIVIL})
    tokens.install(app)
    demo.seed(app)
    directory = app.extensions["licenses"]["directory"]
    directory.holders.update({
        "p-zhang": Holder("p-zhang", ZHANG, name="张三"), "p-li": Holder("p-li", LI, (ORG,), name="李四"),
        "p-zhao": Holder("p-zhao", ZHAO, (ORG,), name="赵六"),
    })
    yield app
    app.extensions["licenses"]["stores"].dispose()  # online verification's own pool (PostgreSQL)


@pytest.fixture
def node(app):
    return app.extensions["licenses"]


class Helpers:
    """Constants and request helpers, handed to tests by the ``h`` fixture."""

    ORG, ZHANG, LI, ZHAO = ORG, ZHANG, LI, ZHAO
    FOOD, RESIDENCE = FOOD, RESIDENCE
    BUREAU, POLICE, CIVIL = BUREAU, POLICE, CIVIL
    WINDOW_CLIENT = WINDOW_CLIENT

    def __init__(self, app, client, tokens: TokenFactory) -> None:
        self.app, self.client, self.tokens = app, client, tokens
        self.issuer = self.bearer(sub=ISSUER_CLIENT, client_id=ISSUER_CLIENT, scope="licenses:issue")
        self.police = self.bearer(sub="police-system", client_id="police-system", scope="licenses:issue")
        self.admin = self.bearer(sub="admin-1", client_id="xsn-console", scope="licenses:admin")
        self.window = self.bearer(sub=WINDOW_CLIENT, client_id=WINDOW_CLIENT, scope="licenses:verify")

    def bearer(self, **kwargs) -> dict[str, str]:
        return self.tokens.bearer(aud="xsn:licenses", **kwargs)

    def holder(self, sub: str) -> dict[str, str]:
        return self.bearer(sub=sub, client_id="xian-demo-app", scope="openid licenses:holder idcard:full org")

    @staticmethod
    def food_fields(**overrides) -> dict:
        fields = {"operator_name": "西安市示范科技有限公司", "legal_representative": "赵六",
                  "address": "西安市雁塔区科技路1号", "premises": "西安市雁塔区科技路1号一层",
                  "business_type": "餐饮服务经营者", "business_scope": "热食类食品制售"}
        fields.update(overrides)
        return fields

    @staticmethod
    def residence_fields(**overrides) -> dict:
        fields = {"name": "张三", "sex": "男", "birth_date": "1990-01-01", "id_number": ZHANG,
                  "address": "西安市雁塔区长安南路100号"}
        fields.update(overrides)
        return fields

    def issue_food(self, key: str | None = None, headers=None, **overrides):
        body = {"type_code": FOOD, "holder_code": ORG, "holder_name": "西安市示范科技有限公司",
                "fields": self.food_fields()}
        body.update(overrides)
        extra = {"Idempotency-Key": key} if key else {}
        return self.client.post("/licences", json=body, headers={**(headers or self.issuer), **extra})

    def issue_residence(self, headers=None, **overrides):
        body = {"type_code": RESIDENCE, "holder_code": ZHANG, "holder_name": "张三",
                "fields": self.residence_fields()}
        body.update(overrides)
        return self.client.post("/licences", json=body, headers=headers or self.police)

    def authorise(self, licence_id: str, sub: str = "p-zhang", **overrides):
        body = {"licence_id": licence_id, "fields": ["name", "address"], "purpose": "办理居住登记",
                "audience": WINDOW_CLIENT, "minutes": 10, "max_uses": 1}
        body.update(overrides)
        return self.client.post("/my/authorisations", json=body, headers=self.holder(sub))

    def count(self, model) -> int:
        from sqlalchemy import func, select

        from common.db import get_db

        with get_db(self.app).session() as session:
            return session.scalar(select(func.count()).select_from(model))

    @staticmethod
    def other_citizen() -> str:
        return CitizenId.build("610113", date(2001, 5, 5), 77).value


@pytest.fixture
def h(app, client, tokens) -> Helpers:
    return Helpers(app, client, tokens)
