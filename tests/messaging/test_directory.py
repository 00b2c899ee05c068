"""The identity directory over HTTP: unmasked mobiles only, unknown people absent, outages a 503."""

from __future__ import annotations

import pytest
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
    assert calls[0] == ("p1", "Bearer t0k")
    directory.lookup(["p1"])
    assert len(calls) == 3  # p1 came from the cache the second time
    with pytest.raises(ServiceUnavailable):
        directory.lookup(["broken"])


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
