"""The identity directory over HTTP: unmasked mobiles only, unknown people absent, outages a 503."""

from __future__ import annotations

import threading
import time

import pytest
import structlog
from flask import Flask, jsonify, request
from sqlalchemy import func, select

from common.db import get_db
from common.errors import ServiceUnavailable
from common.http import ServiceClient
from messaging.directory import Contact, IdentityDirectory
from messaging.models import Message


@pytest.fixture
def identity(serve_app):
    app = Flask("fake-identity")
    calls = []

    @app.get("/api/v1/people/<sub>")
    def person(sub):
        calls.append((sub, request.headers.get("Authorization")))
        if sub == "broken":
            return jsonify({"code": "internal_error"}), 500
        people = {"p1": {"name": "张三", "mobile": "13800001234"}, "p2": {"name": "李四", "mobile": "139****5678"}}
        return (jsonify(people[sub]), 200) if sub in people else (jsonify({"code": "person_not_found"}), 404)

    return serve_app(app), calls


def test_lookup_through_identity(identity):
    url, calls = identity
    directory = IdentityDirectory(ServiceClient(url, token_provider=lambda: "t0k"))
    found = directory.lookup(["p1", "p2", "nobody", "p1"])
    assert found == {"p1": Contact("p1", "张三", "13800001234", None), "p2": Contact("p2", "李四", None, None)}
    assert sorted(calls) == [("nobody", "Bearer t0k"), ("p1", "Bearer t0k"), ("p2", "Bearer t0k")]  # once each
    directory.lookup(["p1"])
    assert len(calls) == 3  # p1 came from the cache the second time
    with pytest.raises(ServiceUnavailable):
        directory.lookup(["broken"])


@pytest.fixture
def slow_identity(serve_app):
    """Identity taking 20 ms a person; records how many lookups were in flight at once."""
    app = Flask("slow-identity")
    state = {"now": 0, "most": 0, "calls": 0, "request_ids": set()}
    lock = threading.Lock()

    @app.get("/api/v1/people/<sub>")
    def person(sub):
        with lock:
            state["now"] += 1
            state["calls"] += 1
            state["most"] = max(state["most"], state["now"])
            state["request_ids"].add(request.headers.get("X-Request-ID"))
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        if sub.startswith("down"):
            return jsonify({"code": "overloaded"}), 500
        return jsonify({"name": sub, "mobile": "13800001234"}), 200

    return serve_app(app), state


def test_a_bulk_lookup_runs_concurrently_in_the_requests_context(slow_identity):
    url, state = slow_identity
    directory = IdentityDirectory(ServiceClient(url), concurrency=8)
    subjects = [f"p{i}" for i in range(80)]
    structlog.contextvars.bind_contextvars(request_id="req-bulk-1")
    try:
        found = directory.lookup(subjects + subjects[:10])
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    assert list(found) == subjects and found["p7"] == Contact("p7", "p7", "13800001234", None)
    assert state["calls"] == 80 and 1 < state["most"] <= 8
    assert state["request_ids"] == {"req-bulk-1"}  # every lookup carries the send's request id


def test_a_failed_bulk_lookup_is_a_503_and_stops_asking(slow_identity):
    url, state = slow_identity
    directory = IdentityDirectory(ServiceClient(url, retries=0), concurrency=4)
    with pytest.raises(ServiceUnavailable):
        directory.lookup([f"down{i}" for i in range(200)])
    assert state["calls"] < 50  # the lookups not yet started were cancelled


def test_unreachable_identity_is_a_503_and_nothing_is_written(licenses, hub_app):
    from common.http import ServiceClient as Client
    from tests.support.suite import free_port

    hub_app.extensions["messaging"].directory = IdentityDirectory(Client(f"http://127.0.0.1:{free_port()}",
                                                                         retries=0))
    response = licenses.send({"template": "licence_issued", "recipients": [{"subject": "p1"}],
                              "variables": {"licence_name": "a", "face_number": "b", "issuer": "c"}})
    assert response.status_code == 503 and response.get_json()["code"] == "directory_unavailable"
    with get_db(hub_app).session() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0
