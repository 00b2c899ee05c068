"""The shared request path's shortcuts keep its answers: JSON by orjson, argument schemas built
once per route, the request-id pattern, the token on ``g`` and in the log context."""

from __future__ import annotations

import dataclasses
import decimal
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import marshmallow as ma
import pytest
import structlog
from flask import Flask, g
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api, Blueprint

from common.request_ids import REQUEST_ID_RE
from common.web import arguments
from common.web.app import ServiceFlask
from common.web.json_provider import OrjsonProvider
from tests.support.suite import TokenFactory


@dataclasses.dataclass
class Point:
    x: int
    when: date


class Instant(datetime):
    pass


class Html:
    def __html__(self) -> str:
        return "<b>bold</b>"


# (value, whose bytes): "utf8" is Flask's own output with ensure_ascii off (what orjson writes),
# "flask" Flask's output as it is (what orjson refuses goes through Flask's encoder).
VALUES = [
    ({"b": 1, "a": [1, 2.5, None, True, -0.1, 1e16], "名称": "西安市示范科技有限公司",
      "nested": {"z": "\u2028\t", "y": "\"q\"\n"}}, "utf8"),
    ({"day": date(2026, 12, 7), "at": datetime(2026, 12, 7, 3, 1, 41, 282473, tzinfo=UTC),
      "naive": datetime(2026, 1, 1, 8, 0),
      "east": datetime(2026, 3, 1, 7, 59, 59, tzinfo=timezone(timedelta(hours=8))),
      # the same instant in two zones, and the same day as a date: dates are rendered once each
      # (json_provider's cache), each value still as Flask renders it
      "again": [datetime(2026, 3, 1, 7, 59, 59, tzinfo=timezone(timedelta(hours=8))),
                datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), date(2026, 12, 7), date(2026, 12, 7)]},
     "utf8"),
    # instants are rendered by json_provider's own formatter: every weekday and month, a year
    # below 1000, a zone that is not a fixed offset, a zero offset other than UTC's singleton,
    # a subclass of datetime (Flask's path)
    ({"days": [datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=d, hours=d) for d in range(7)],
      "months": [datetime(2025, m, 28, 23, 59, 59, 999999) for m in range(1, 13)],
      "early": datetime(7, 3, 4, 5, 6, 7, tzinfo=UTC),
      "shanghai": datetime(2026, 1, 1, 0, 30, tzinfo=ZoneInfo("Asia/Shanghai")),
      "zero": datetime(2026, 6, 30, 23, 0, tzinfo=timezone(timedelta(0), "Z")),
      "sub": Instant(2026, 7, 1, 12, 0, tzinfo=UTC)}, "utf8"),
    ({"amount": decimal.Decimal("12.50"), "id": uuid.UUID(int=5), "point": Point(1, date(2026, 1, 2)),
      "html": Html()}, "utf8"),
    ({2: "int keys", 1: "sorted"}, "utf8"),
    ([], "utf8"),
    (None, "utf8"),
    ([2**70, "an integer beyond 64 bits"], "flask"),
    ("\ud800 a lone surrogate", "flask"),
]


@pytest.mark.parametrize(("value", "whose"), VALUES)
def test_orjson_answers_are_the_json_flask_gives(value, whose):
    app = Flask(__name__)
    utf8 = DefaultJSONProvider(app)
    utf8.ensure_ascii = False
    with app.app_context():
        ours = OrjsonProvider(app).response(value)
        expected = (utf8 if whose == "utf8" else DefaultJSONProvider(app)).response(value)
    assert ours.mimetype == "application/json"
    assert ours.get_data() == expected.get_data()  # sorted keys, compact, RFC 822 dates, one newline


def test_orjson_answers_refuse_what_flask_refuses_and_indent_in_debug():
    app = ServiceFlask(__name__)
    assert isinstance(app.json, OrjsonProvider)
    with app.app_context(), pytest.raises(TypeError):
        app.json.response({"a set": {1, 2}})
    app.debug = True
    with app.app_context():
        assert app.json.response({"a": 1}).get_data() == b'{\n  "a": 1\n}\n'


class CountedSchema(ma.Schema):  # counts its instances
    built = 0
    name = ma.fields.String(required=True)

    def __init__(self, *args, **kwargs) -> None:
        type(self).built += 1
        super().__init__(*args, **kwargs)


class NameSchema(ma.Schema):
    name = ma.fields.String(required=True)


def test_a_view_documented_by_flask_smorest_decorators_has_their_document_and_none_of_their_wrappers():
    def spec_of(documented: bool) -> dict:
        app = ServiceFlask(__name__)
        app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.1.0")
        api = Api(app)
        blp = Blueprint("answers", __name__)
        decorators = (blp.response(200, NameSchema), blp.doc(security=[{"bearerAuth": []}]))

        def answer():
            return app.json.response({"name": "张三"})

        if documented:
            view = arguments.documented_by(*decorators)(answer)
            assert view is answer  # called as it is
        else:
            view = decorators[0](decorators[1](answer))
        blp.route("/answer")(view)
        api.register_blueprint(blp)
        assert app.test_client().get("/answer").json == {"name": "张三"}
        return api.spec.to_dict()

    documented = spec_of(documented=True)
    assert documented == spec_of(documented=False)
    # and it holds what the decorators document: the answer's schema and the security scheme
    operation = documented["paths"]["/answer"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Name")
    assert operation["security"] == [{"bearerAuth": []}]


def test_documented_by_refuses_a_decorator_that_acts_at_request_time():
    blp = Blueprint("acting", __name__)

    def answer():
        return None

    with pytest.raises(ValueError, match="arguments"):
        arguments.documented_by(blp.arguments(NameSchema), blp.doc(summary="s"))(answer)
    with pytest.raises(ValueError, match="etag"):
        arguments.documented_by(blp.etag)(answer)
    with pytest.raises(ValueError, match="needs the decorators"):
        arguments.documented_by()


def test_importing_common_web_gives_every_services_blueprints_the_parser():
    # No install() here: importing a service's API module (which imports common.web first)
    # must be enough, before its routes are decorated.
    from payment import api as payment_api
    from seal import api as seal_api

    for blueprint in (payment_api.ledger_blp, seal_api.blp, Blueprint("any", __name__)):
        assert isinstance(blueprint.ARGUMENTS_PARSER, arguments.SchemaOnceParser)


def test_an_argument_schema_class_is_built_once_per_route_not_per_request():
    app = ServiceFlask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.1.0")
    api = Api(app)
    blp = Blueprint("counted", __name__)

    @blp.route("/echo", methods=["POST"])
    @blp.arguments(CountedSchema)
    def echo(body):
        return body

    assert CountedSchema.built == 1  # when decorated
    api.register_blueprint(blp)  # the OpenAPI document resolves the class by itself
    built = CountedSchema.built
    client = app.test_client()
    assert client.post("/echo", json={"name": "张三"}).json == {"name": "张三"}
    assert client.post("/echo", json={"name": "李四"}).json == {"name": "李四"}
    assert client.post("/echo", json={}).status_code == 422  # still validated
    assert CountedSchema.built == built  # none per request
    body = api.spec.to_dict()["paths"]["/echo"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Counted"}


class TextSchema(ma.Schema):
    name = ma.fields.String()
    tags = ma.fields.List(ma.fields.String())
    extra = ma.fields.Dict()


def test_loaded_text_carrying_a_nul_character_is_refused_with_its_fields():
    """Whatever the location and however deep (list items, mapping keys and values): 422."""
    app = ServiceFlask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.1.0")
    api = Api(app)
    blp = Blueprint("texts", __name__)

    @blp.route("/echo", methods=["POST"])
    @blp.arguments(TextSchema, location="query", as_kwargs=True)
    @blp.arguments(TextSchema)
    def echo(body, **query):
        return {"body": body, "query": query}

    api.register_blueprint(blp)
    client = app.test_client()
    assert client.post("/echo?name=a", json={"name": "b", "tags": ["c"], "extra": {"d": "e"}}).status_code == 200
    for body in ({"name": "a\x00"}, {"tags": ["ok", "\x00"]}, {"extra": {"\x00": 1}}, {"extra": {"k": ["\x00"]}}):
        refused = client.post("/echo", json={"name": "fine", **body})
        assert refused.status_code == 422, body
        assert refused.json["errors"]["json"] == {next(iter(body)): ["must not contain the NUL character"]}
    refused = client.post("/echo?name=a%00", json={})
    assert refused.status_code == 422
    assert refused.json["errors"]["query"] == {"name": ["must not contain the NUL character"]}


@pytest.mark.parametrize(("value", "kept"), [
    ("req-from-gateway-1", True), ("a" * 128, True), ("abc.def:gh_ij-k", True),
    ("short", False), ("a" * 129, False), ("bad value; drop", False), ("abcdefgh\n", False), ("", False),
])
def test_request_id_pattern(value, kept):
    assert bool(REQUEST_ID_RE.match(value)) is kept


def test_the_caller_lands_on_g_and_in_the_log_context(make_app):
    from common.web.auth import authenticate

    tokens = TokenFactory()
    app = make_app("seal")
    tokens.install(app)
    token = tokens.token(sub="person-7", client_id="xsn-licenses", scope="seal:sign seal:verify")
    with app.test_request_context("/", headers={"Authorization": f"Bearer {token}"}):
        structlog.contextvars.clear_contextvars()
        claims = authenticate("seal:sign")
        assert claims["sub"] == "person-7" and g.token_claims is claims
        assert (g.client_id, g.subject) == ("xsn-licenses", "person-7")
        assert structlog.contextvars.get_contextvars() == {"client_id": "xsn-licenses", "subject": "person-7"}
        assert authenticate()["sub"] == "person-7"  # no scope asked: any valid token
        with pytest.raises(Exception) as refused:
            authenticate("seal:admin")
        assert refused.value.code == "insufficient_scope"
    with app.test_request_context("/", headers={"Authorization": f"Basic {token}"}), pytest.raises(Exception) as none:
        authenticate()
    assert none.value.code == "token_missing"


@pytest.mark.parametrize(("service", "method", "path", "form"), [
    ("payment", "GET", "/cashier/receipt?code=AB%00CD", None),  # a page reading request.args
    ("seal", "GET", "/manage/?org=91610000%00", None),
    ("identity", "POST", "/login", {"username": "zhang\x00san", "password": "x"}),  # a form, before its CSRF check
])
def test_a_nul_in_a_query_or_form_a_view_reads_itself_is_refused(make_app, service, method, path, form):
    client = make_app(service).test_client()
    response = client.open(path, method=method, data=form)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]


def test_a_query_without_a_nul_is_not_parsed_by_the_check(make_app, monkeypatch):
    from werkzeug.wrappers import Request

    parsed = []
    monkeypatch.setattr(Request, "args", property(lambda self: parsed.append(1) or {}), raising=True)
    assert make_app("seal").test_client().get("/livez?x=1").status_code == 200
    assert parsed == []  # one substring test on the query as sent, nothing parsed
