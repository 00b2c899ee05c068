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

PEOPLE = {"p1": {"name": "张三", "mobile": "13800001234", "email": "zhangsan@example.test"},
          "p2": {"name": "李四", "mobile": "139****5678", "email": "l***@example.test"},
          "p3": {"name": "王五", "mobile": None},
          "p4": {"name": "赵六", "mobile": "13700001111", "email": "zhao*liu@example.test"}}  # "*" is legal there


@pytest.fixture
def identity(serve_app):
    """Identity's two people endpoints; ``calls`` records (method, subjects, Authorization)."""
    app = Flask("fake-identity")
    calls = []

    @app.get("/api/v1/people/<sub>")
    def person(sub):
        calls.append(("GET", [sub], request.headers.get("Authorization")))
        if sub == "broken":
            return jsonify({"code": "internal_error"}), 500
        return (jsonify({"id": sub, **PEOPLE[sub]}), 200) if sub in PEOPLE else \
            (jsonify({"code": "person_not_found"}), 404)

    @app.post("/api/v1/people/lookup")
    def lookup():
        subjects = request.get_json()["subjects"]
        calls.append(("POST", subjects, request.headers.get("Authorization")))
        if "broken" in subjects:
            return jsonify({"code": "internal_error"}), 500
        if "garbled" in subjects:
            return jsonify({"persons": []}), 200
        return jsonify({"people": [{"id": s, **PEOPLE[s]} for s in reversed(subjects) if s in PEOPLE],
                        "unknown": [s for s in subjects if s not in PEOPLE]}), 200

    return serve_app(app), calls


def test_many_people_are_one_batch_lookup_and_one_person_a_get(identity):
    url, calls = identity
    directory = IdentityDirectory(ServiceClient(url, token_provider=lambda: "t0k"))
    found = directory.lookup(["p1", "p2", "nobody", "p1", "p4"])
    assert found == {"p1": Contact("p1", "张三", "13800001234", "zhangsan@example.test"),
                     "p2": Contact("p2", "李四", None, None),  # masked mobile and e-mail dropped
                     "p4": Contact("p4", "赵六", "13700001111", "zhao*liu@example.test")}  # a real "*" kept
    assert calls == [("POST", ["p1", "p2", "nobody", "p4"], "Bearer t0k")]  # once each
    assert directory.lookup(["p1", "nobody"]) == {"p1": found["p1"]}
    assert len(calls) == 1  # both came from the cache, the unknown one too
    assert directory.lookup(["p3"]) == {"p3": Contact("p3", "王五", None, None)}
    assert calls[-1] == ("GET", ["p3"], "Bearer t0k")
    for bad in (["broken"], ["broken", "p9"], ["garbled", "p8"]):
        with pytest.raises(ServiceUnavailable):
            directory.lookup(bad)


def test_a_big_send_is_looked_up_in_chunks(identity):
    url, calls = identity
    directory = IdentityDirectory(ServiceClient(url), concurrency=1, batch_size=2)
    found = directory.lookup(["p1", "p2", "x1", "p3", "x2"])
    assert list(found) == ["p1", "p2", "p3"]
    assert [subjects for _m, subjects, _a in calls] == [["p1", "p2"], ["x1", "p3"], ["x2"]]
    assert [method for method, _s, _a in calls] == ["POST", "POST", "GET"]  # a chunk of one is a GET


@pytest.fixture
def slow_identity(serve_app):
    """Identity taking 20 ms a lookup; records how many lookups were in flight at once."""
    app = Flask("slow-identity")
    state = {"now": 0, "most": 0, "calls": 0, "request_ids": set()}
    lock = threading.Lock()

    @app.post("/api/v1/people/lookup")
    def lookup():
        subjects = request.get_json()["subjects"]
        with lock:
            state["now"] += 1
            state["calls"] += 1
            state["most"] = max(state["most"], state["now"])
            state["request_ids"].add(request.headers.get("X-Request-ID"))
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        if subjects[0].startswith("down"):
            return jsonify({"code": "overloaded"}), 500
        return jsonify({"people": [{"id": s, "name": s, "mobile": "13800001234"} for s in subjects],
                        "unknown": []}), 200

    return serve_app(app), state


def test_a_bulk_lookup_runs_its_chunks_concurrently_in_the_requests_context(slow_identity):
    url, state = slow_identity
    directory = IdentityDirectory(ServiceClient(url), concurrency=4, batch_size=10)
    subjects = [f"p{i}" for i in range(80)]
    structlog.contextvars.bind_contextvars(request_id="req-bulk-1")
    try:
        found = directory.lookup(subjects + subjects[:10])
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    assert list(found) == subjects and found["p7"] == Contact("p7", "p7", "13800001234", None)
    assert state["calls"] == 8 and 1 < state["most"] <= 4
    assert state["request_ids"] == {"req-bulk-1"}  # every lookup carries the send's request id


def test_a_failed_bulk_lookup_is_a_503_and_stops_asking(slow_identity):
    url, state = slow_identity
    directory = IdentityDirectory(ServiceClient(url, retries=0), concurrency=4, batch_size=5)
    with pytest.raises(ServiceUnavailable):
        directory.lookup([f"down{i}" for i in range(400)])
    assert state["calls"] < 40  # of 80 chunks: the lookups not yet started were cancelled


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


@pytest.fixture
def registered_identity(serve_app):
    """Identity whose hub client is registered for ``identity:people:read phone:full`` only:
    a token request for more is refused ``invalid_scope``; people come masked by the token's scope.
    ``asked`` records each token request's scope, ``audiences`` its audience."""
    app = Flask("identity-without-email-full")
    registered, asked, audiences = {"identity:people:read", "phone:full"}, [], []

    @app.post("/oauth/token")
    def token():
        scope = request.form["scope"]
        asked.append(scope)
        audiences.append(request.form.get("audience"))
        if request.authorization is None or request.authorization.password != "s3cret":
            return jsonify({"error": "invalid_client"}), 401
        if not set(scope.split()) <= registered:
            return jsonify({"error": "invalid_scope"}), 400
        time.sleep(0.02)  # long enough for concurrent lookups to meet here
        return jsonify({"access_token": scope.replace(" ", "+"), "token_type": "Bearer", "expires_in": 300})

    @app.post("/api/v1/people/lookup")
    def lookup():
        scopes = request.headers["Authorization"].removeprefix("Bearer ").split("+")
        return jsonify({"people": [{"id": s, "name": s,
                                    "mobile": "13800001234" if "phone:full" in scopes else "138****1234",
                                    "email": f"{s}@example.test" if "email:full" in scopes else "x***@example.test"}
                                   for s in request.get_json()["subjects"]], "unknown": []})

    return serve_app(app), asked, audiences


def _hub_config(url: str, **settings) -> dict:
    from messaging import SETTINGS
    return {**SETTINGS, "SERVICE_URLS": {"identity": url}, "HTTP_TIMEOUT": 5.0,
            "MESSAGING_IDENTITY_CLIENT_SECRET": "s3cret", **settings}


def test_the_directory_asks_for_the_configured_scope_for_identitys_audience(registered_identity):
    from messaging import wiring

    url, asked, audiences = registered_identity
    directory = wiring.directory(_hub_config(url, MESSAGING_IDENTITY_SCOPE="identity:people:read phone:full"))
    assert directory.lookup(["p1", "p2"])["p1"] == Contact("p1", "p1", "13800001234", None)
    assert asked == ["identity:people:read phone:full"] and audiences == ["xsn:identity"]


def test_a_refused_scope_falls_back_to_the_base_scope_with_a_warning(registered_identity):
    from structlog.testing import capture_logs

    from messaging import wiring

    url, asked, _audiences = registered_identity
    directory = wiring.directory(_hub_config(url))  # the default asks for email:full too
    with capture_logs() as logs:
        found = directory.lookup(["p1", "p2"])
    assert found == {"p1": Contact("p1", "p1", None, None), "p2": Contact("p2", "p2", None, None)}  # masked: dropped
    assert asked == ["identity:people:read phone:full email:full", "identity:people:read"]
    assert [(e["event"], e["log_level"], e["client_id"], e["scope"], e["fallback"]) for e in logs] == \
        [("identity_scope_refused", "warning", "xsn-messaging", "identity:people:read phone:full email:full",
          "identity:people:read")]


def test_chunks_in_flight_share_one_token_request_and_one_warning(registered_identity):
    from structlog.testing import capture_logs

    from messaging import wiring

    url, asked, _audiences = registered_identity
    directory = wiring.directory(_hub_config(url, MESSAGING_DIRECTORY_BATCH=2, MESSAGING_DIRECTORY_CONCURRENCY=4))
    with capture_logs() as logs:
        assert len(directory.lookup([f"p{i}" for i in range(8)])) == 8  # four chunks at once
    assert asked == ["identity:people:read phone:full email:full", "identity:people:read"]
    assert [e["event"] for e in logs] == ["identity_scope_refused"]


def test_each_renewal_asks_for_the_full_scope_first(registered_identity, monkeypatch):
    from types import SimpleNamespace

    from common.peers import credentials

    url, asked, _audiences = registered_identity
    clock = SimpleNamespace(monotonic=lambda: 1000.0)
    monkeypatch.setattr(credentials, "time", clock)
    token = credentials.ClientCredentials(f"{url}/oauth/token", "xsn-messaging", lambda: "s3cret").provider(
        "xsn:identity", "identity:people:read email:full", fallback_scope="identity:people:read")
    assert token() == token() == "identity:people:read"  # cached
    assert asked == ["identity:people:read email:full", "identity:people:read"]
    clock.monotonic = lambda: 1000.0 + 300  # expired (renewed a minute early)
    assert token() == "identity:people:read"
    assert asked == ["identity:people:read email:full", "identity:people:read"] * 2


def test_a_token_refused_for_another_reason_is_not_retried(registered_identity):
    from messaging import wiring

    url, asked, _audiences = registered_identity
    directory = wiring.directory(_hub_config(url, MESSAGING_IDENTITY_CLIENT_SECRET="wrong"))
    with pytest.raises(ServiceUnavailable) as refused:
        directory.lookup(["p1", "p2"])
    assert refused.value.code == "directory_unavailable"
    assert asked == ["identity:people:read phone:full email:full"]  # invalid_client: asked once, not again


def test_the_secret_comes_from_identitys_seed_embedded_and_only_from_configuration_in_production(
        registered_identity, tmp_path):
    import json

    from messaging import wiring

    url, asked, _audiences = registered_identity
    (tmp_path / "clients.json").write_text(json.dumps({"xsn-messaging": {"client_secret": "s3cret"}}))
    embedded = _hub_config(url, MESSAGING_IDENTITY_CLIENT_SECRET=None, VAR_DIR=str(tmp_path), ENV="embedded",
                           MESSAGING_IDENTITY_SCOPE="identity:people:read")
    assert wiring.directory(embedded).lookup(["p1", "p2"])["p1"] == Contact("p1", "p1", None, None)
    assert asked == ["identity:people:read"]
    with pytest.raises(ServiceUnavailable) as refused:  # fails closed: the demo file is not read
        wiring.directory({**embedded, "ENV": "production"}).lookup(["p1", "p2"])
    assert refused.value.code == "directory_unavailable" and asked == ["identity:people:read"]
