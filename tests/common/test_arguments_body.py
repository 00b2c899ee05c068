"""``common.web.arguments.arguments_or`` reads a JSON body off ``wsgi.input`` itself when the
request gives its length: the same bytes, limits and errors as ``request.get_data``, and the body
still there for webargs when the fast path declines it."""

from __future__ import annotations

import io

import marshmallow as ma
import pytest
from flask import request
from flask_smorest import Api, Blueprint

from common.web import arguments
from common.web.app import ServiceFlask


class CodeSchema(ma.Schema):
    code = ma.fields.String(required=True)
    n = ma.fields.Integer()


def only_code(body):
    return body if type(body) is dict and set(body) == {"code"} and type(body["code"]) is str else None


@pytest.fixture
def app():
    app = ServiceFlask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.1.0", MAX_CONTENT_LENGTH=64)
    api = Api(app)
    blp = Blueprint("body", __name__)
    app.paths = []  # which path each request took

    @blp.route("/code", methods=["POST"])
    @arguments.arguments_or(blp, CodeSchema, only_code)
    def code(body):
        # what the schema path was given is what the fast path read (same bytes, read again)
        return {"body": body, "raw": request.get_data(as_text=True)}

    api.register_blueprint(blp)
    real = arguments._body

    def spied(req, environ):
        calls = []
        get_data = req.get_data
        req.get_data = lambda *args, **kwargs: calls.append(1) or get_data(*args, **kwargs)
        try:
            return real(req, environ)
        finally:
            del req.get_data
            app.paths.append("get_data" if calls else "fast")

    arguments._body = spied
    yield app
    arguments._body = real


def test_a_plain_body_is_read_once_off_wsgi_input_and_stays_readable(app):
    answer = app.test_client().post("/code", json={"code": "ABC"})
    assert answer.status_code == 200
    assert answer.get_json() == {"body": {"code": "ABC"}, "raw": '{"code": "ABC"}'}
    assert app.paths == ["fast"]


def test_a_body_the_fast_path_declines_reaches_the_schema_whole(app):
    client = app.test_client()
    assert client.post("/code", json={"code": "ABC", "n": 2}).get_json()["body"] == {"code": "ABC", "n": 2}
    refused = client.post("/code", json={"code": 1})
    assert refused.status_code == 422 and "code" in refused.get_json()["errors"]["json"]
    assert app.paths == ["fast", "fast"]


def test_a_media_type_with_parameters_is_json_as_webargs_says(app):
    answer = app.test_client().post("/code", data=b'{"code": "X"}',
                                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert answer.get_json()["body"] == {"code": "X"}
    assert app.test_client().post("/code", data=b'{"code": "X"}',
                                  headers={"Content-Type": "text/plain"}).status_code == 422


def test_a_body_over_the_limit_is_413_as_before(app):
    answer = app.test_client().post("/code", json={"code": "x" * 100})
    assert answer.status_code == 413
    assert app.paths == ["get_data"]


def test_a_chunked_body_goes_through_werkzeug(app):
    answer = app.test_client().post("/code", input_stream=io.BytesIO(b'{"code": "C"}'),
                                    headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                                    environ_overrides={"wsgi.input_terminated": True})
    assert answer.status_code == 200 and answer.get_json()["body"] == {"code": "C"}
    assert app.paths == ["get_data"]


class Trickle(io.BytesIO):
    """A stream that hands out at most ``step`` bytes a read."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__(data)
        self.step = step

    def read(self, size: int | None = -1) -> bytes:
        return super().read(self.step if size is None or size < 0 else min(size, self.step))


def test_short_reads_are_read_on_to_the_length(app):
    body = b'{"code": "SHORT-READS"}'
    answer = app.test_client().post("/code", input_stream=Trickle(body, 4),
                                    headers={"Content-Type": "application/json", "Content-Length": str(len(body))})
    assert answer.status_code == 200 and answer.get_json()["body"] == {"code": "SHORT-READS"}
    assert app.paths == ["fast"]


def test_a_body_shorter_than_its_length_is_a_disconnect_as_in_werkzeug(app):
    body = b'{"code": "CUT"}'
    headers = {"Content-Type": "application/json"}
    longer = {"CONTENT_LENGTH": str(len(body) + 5)}  # the test client would set the stream's own
    cut = app.test_client().post("/code", input_stream=Trickle(body, 100), headers=headers,
                                 environ_overrides=longer)
    assert cut.status_code == 400
    # a server that ends the stream itself: what there was (werkzeug reads it the same way)
    ended = app.test_client().post("/code", input_stream=Trickle(body, 100), headers=headers,
                                   environ_overrides={**longer, "wsgi.input_terminated": True})
    assert ended.status_code == 200 and ended.get_json()["body"] == {"code": "CUT"}
