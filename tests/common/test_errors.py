"""One error language: every failure leaves as application/problem+json with a stable code."""

from __future__ import annotations

import pytest
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from common.config import SERVICES
from common.errors import Conflict

PROBLEM = "application/problem+json"


class EchoSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=10))
    amount_fen = fields.Integer(required=True, validate=validate.Range(min=1))


def probe_blueprint() -> Blueprint:
    """A resource shaped like the real ones, so the framework paths are exercised."""
    blp = Blueprint("probe", __name__, url_prefix="/probe")

    @blp.route("/echo")
    class Echo(MethodView):
        @blp.arguments(EchoSchema)
        @blp.response(201, EchoSchema)
        def post(self, body):
            return body

    @blp.route("/conflict")
    class Clash(MethodView):
        def post(self):
            raise Conflict("the thing already exists", code="thing_exists", thing_id="t-1")

    @blp.route("/boom")
    class Boom(MethodView):
        def get(self):
            internals = "/etc/" + "passwd"  # the logged frames quote this line's source, not its values
            raise RuntimeError(f"secret internals {internals}")

    return blp


@pytest.fixture
def client(make_app):
    app = make_app("payment", MAX_CONTENT_LENGTH=1024)
    app.extensions["xsn_api"].register_blueprint(probe_blueprint())
    return app.test_client()


def assert_problem(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.json
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:xsn:problem:{code}"
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


@pytest.mark.parametrize("service", SERVICES)
def test_unknown_route_and_wrong_method_in_every_service(make_app, service):
    client = make_app(service).test_client()
    assert_problem(client.get("/definitely/not/here"), 404, "not_found")
    response = client.delete("/livez")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_valid_request_passes(client):
    response = client.post("/probe/echo", json={"name": "ok", "amount_fen": 5})
    assert response.status_code == 201 and response.json == {"name": "ok", "amount_fen": 5}


def test_malformed_json(client):
    response = client.post("/probe/echo", data='{"name": "x",', content_type="application/json")
    assert_problem(response, 400, "malformed_json")


@pytest.mark.parametrize("body", ["1" * 5000, "[" * 100_000 + "]" * 100_000],
                         ids=["an integer of 5,000 digits", "nesting 100,000 deep"])
def test_json_that_python_refuses_beyond_its_syntax_is_malformed(make_app, body):
    app = make_app("payment", MAX_CONTENT_LENGTH=1024 * 1024)
    app.extensions["xsn_api"].register_blueprint(probe_blueprint())
    response = app.test_client().post("/probe/echo", data=body, content_type="application/json")
    assert_problem(response, 400, "malformed_json")


def test_invalid_fields_are_listed(client):
    response = client.post("/probe/echo", json={"name": "", "amount_fen": "lots", "extra": 1})
    body = assert_problem(response, 422, "validation_failed")
    assert set(body["errors"]) == {"name", "amount_fen", "extra"}


def test_oversized_body(client):
    response = client.post("/probe/echo", data="x" * 4096, content_type="application/json")
    assert_problem(response, 413, "payload_too_large")


def test_domain_problem_keeps_its_code_and_members(client):
    body = assert_problem(client.post("/probe/conflict"), 409, "thing_exists")
    assert body["thing_id"] == "t-1"


def test_unexpected_exception_hides_internals(client):
    from structlog.testing import capture_logs

    with capture_logs() as captured:
        response = client.get("/probe/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "passwd" not in response.get_data(as_text=True)
    assert body["request_id"] == response.headers["X-Request-ID"]
    # Logged by its type and its frames, not its message (no exc_info: its traceback ends in it).
    [logged] = [e for e in captured if e["event"] == "unhandled_exception"]
    assert logged["error_type"] == "RuntimeError" and "in get" in logged["traceback"]
    assert "passwd" not in repr(captured) and "exc_info" not in logged


def test_a_traceback_without_messages_names_each_exception_of_the_chain_by_its_type():
    from common.errors import traceback_without_messages

    secret = "pass" + "word=s3cret"  # the frames quote the source lines, not the values

    def lookup():
        return {}[secret]

    def load():
        try:
            lookup()
        except KeyError as exc:
            raise RuntimeError(secret) from exc

    try:
        load()
    except RuntimeError as exc:
        text = traceback_without_messages(exc)
    assert "s3cret" not in text
    assert text.index("in load") < text.index("\nRuntimeError") < text.index("in lookup") < text.index("\nKeyError")
