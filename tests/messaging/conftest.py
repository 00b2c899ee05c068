"""Fixtures of the message hub's tests: a seeded hub on a fresh database, tokens, people."""

from __future__ import annotations

import pytest

from common.web.ratelimit import RateLimits
from messaging.directory import Contact, MemoryDirectory
from tests.support.suite import TokenFactory

PEOPLE = [Contact("person-zhang", "张三", "13800001234", "zhang@example.cn"),
          Contact("person-li", "李四", "13900005678", None),
          Contact("person-wang", "王五", None, None)]


class Caller:
    """An app calling the hub's API with a token of its own."""

    def __init__(self, client, tokens: TokenFactory, client_id: str, scope: str = "messaging:send",
                 sub: str | None = None) -> None:
        self.client, self.tokens, self.client_id, self.scope, self.sub = client, tokens, client_id, scope, sub

    def headers(self, **extra) -> dict:
        token = self.tokens.token(sub=self.sub or self.client_id, scope=self.scope, aud="xsn:messaging",
                                  client_id=self.client_id)
        return {"Authorization": f"Bearer {token}", **extra}

    def send(self, body: dict, key: str | None = None):
        headers = self.headers(**({"Idempotency-Key": key} if key else {}))
        return self.client.post("/messages", json=body, headers=headers)

    def get(self, path: str, **kwargs):
        return self.client.get(path, headers=self.headers(), **kwargs)

    def post(self, path: str, **kwargs):
        return self.client.post(path, headers=self.headers(), **kwargs)


@pytest.fixture
def hub_app(make_app, tokens):
    from messaging.seed import seed

    app = make_app("messaging", MESSAGING_DIRECTORY="memory", MESSAGING_DISPATCH="inline",
                   MESSAGING_SMS_URL="http://127.0.0.1:9/", MESSAGING_SMTP_PORT=9, MESSAGING_RETRY_SCHEDULE="60")
    tokens.install(app)
    # Limits per test: in a shared Redis, counts to the same demo people would carry over
    # between tests and runs (an hour's window). The Redis storage itself is common's to test.
    app.extensions["xsn_ratelimits"] = RateLimits("memory://")
    app.extensions["messaging"].directory = MemoryDirectory(PEOPLE)
    seed(app)
    return app


@pytest.fixture
def licenses(hub_app, tokens) -> Caller:
    return Caller(hub_app.test_client(), tokens, "xsn-licenses")


@pytest.fixture
def payment(hub_app, tokens) -> Caller:
    return Caller(hub_app.test_client(), tokens, "xsn-payment")


@pytest.fixture
def person(hub_app, tokens):
    def make(sub: str) -> Caller:
        return Caller(hub_app.test_client(), tokens, "xian-demo-app", scope="messaging:inbox", sub=sub)

    return make

