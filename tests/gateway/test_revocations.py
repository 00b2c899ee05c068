"""The revocation feed client (BRIEF contract 2) against an identity stand-in over real HTTP,
and the Redis subscriber against a real Redis."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from flask import Flask, request

from gateway.edge.revocations import CHANNEL, RevocationFeed, subscribe_forever
from gateway.edge.tokens import RevocationList
from tests.gateway.conftest import run_async


def identity_stub(calls: list) -> Flask:
    app = Flask("identity-stub")
    items = [
        {"cursor": "c1", "tokens": [{"jti": "j-1", "exp": int(time.time()) + 600}], "sessions": []},
        {"cursor": "c2", "tokens": [], "sessions": [{"sid": "s-9", "revoked_at": int(time.time())}]},
    ]

    @app.post("/oauth/token")
    def token():
        assert request.authorization.username == "xsn-gateway"
        assert request.authorization.password == "secret"  # noqa: S105 - test value
        assert request.form["scope"] == "tokens:revocations"
        return {"access_token": "feed-token", "token_type": "Bearer", "expires_in": 600}

    @app.get("/oauth/revocations")
    def feed():
        if request.headers.get("Authorization") != "Bearer feed-token":
            return {"code": "invalid_token"}, 401
        calls.append(request.args.get("after"))
        index = {"": 0, "c1": 1}.get(request.args.get("after", ""))
        if index is None:
            return {"cursor": request.args["after"], "tokens": [], "sessions": []}
        return items[index]

    return app


def test_feed_follows_the_cursor(serve_app):
    calls: list = []
    url = serve_app(identity_stub(calls))
    revocations = RevocationList()

    async def scenario():
        async with aiohttp.ClientSession() as session:
            feed = RevocationFeed(revocations, identity_url=url, client_id="xsn-gateway", client_secret="secret",
                                  session=session)
            assert await feed.poll_once() == 1
            assert await feed.poll_once() == 1
            assert await feed.poll_once() == 0
            return feed

    feed = run_async(scenario())
    assert calls == ["", "c1", "c2"] and feed.cursor == "c2"
    assert revocations.is_revoked({"jti": "j-1"}) and revocations.is_revoked({"jti": "x", "sid": "s-9"})
    assert revocations.updated_at is not None


def test_feed_without_secret_or_with_errors_raises(serve_app):
    revocations = RevocationList()

    async def scenario(secret):
        async with aiohttp.ClientSession() as session:
            feed = RevocationFeed(revocations, identity_url=serve_app(identity_stub([])), client_id="xsn-gateway",
                                  client_secret=secret, session=session)
            await feed.poll_once()

    for secret in (None, "wrong"):
        with pytest.raises(Exception):  # noqa: B017 - either is a failed poll the loop logs and retries
            run_async(scenario(secret))
    assert revocations.updated_at is None


@pytest.mark.services
def test_redis_subscription_applies_published_items(redis_url):
    import redis.asyncio as redis

    revocations = RevocationList()

    async def scenario():
        task = asyncio.create_task(subscribe_forever(revocations, redis_url))
        client = redis.from_url(redis_url)
        try:
            deadline = time.monotonic() + 5
            while not revocations.is_revoked({"jti": "pushed"}) and time.monotonic() < deadline:
                await client.publish(CHANNEL, json.dumps({"kind": "token", "jti": "pushed", "exp": time.time() + 60}))
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.aclose()

    run_async(scenario())
    assert revocations.is_revoked({"jti": "pushed"})


def test_a_refused_token_request_is_not_repeated_every_second(serve_app):
    """identity counts failed token requests per address (20/minute): a gateway asking once a
    second with a wrong secret would lock every client behind it out of the token endpoint."""
    calls: list = []
    app = identity_stub(calls)
    token_requests = []
    app.before_request(lambda: token_requests.append(1) if request.path == "/oauth/token" else None)
    url = serve_app(app)

    async def scenario():
        async with aiohttp.ClientSession() as session:
            feed = RevocationFeed(RevocationList(), identity_url=url, client_id="xsn-gateway", client_secret="wrong",
                                  session=session)
            for _ in range(10):
                with pytest.raises(Exception):  # noqa: B017 - refused, then waiting
                    await feed.poll_once()

    run_async(scenario())
    assert len(token_requests) == 1
