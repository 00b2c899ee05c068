"""docs/openapi/*.json are generated from the code (`make openapi`) and must not drift."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import validate

from common.config import SERVICES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "openapi"


def _spec(app) -> dict:
    """The app's OpenAPI document as JSON reads it back (tuples become lists, keys strings)."""
    return json.loads(json.dumps(app.extensions["xsn_api"].spec.to_dict()))


@pytest.mark.parametrize("service", SERVICES)
def test_committed_document_matches_the_code(service):
    app = importlib.import_module(service).create_app({"TESTING": True})
    committed = json.loads((DOCS / f"{service}.json").read_text())
    assert committed == _spec(app), f"docs/openapi/{service}.json is stale: run `make openapi`"


@pytest.mark.parametrize("service", SERVICES)
def test_document_is_valid_openapi(service):
    validate(json.loads((DOCS / f"{service}.json").read_text()))


@pytest.mark.parametrize("service", SERVICES)
def test_errors_are_documented_as_the_problem_documents_they_are(service):
    app = importlib.import_module(service).create_app({"TESTING": True})
    spec = _spec(app)
    for name, response in spec["components"]["responses"].items():
        assert set(response.get("content", {})) <= {"application/problem+json"}, name
    response = app.test_client().get("/no/such/thing")
    assert response.mimetype == "application/problem+json"
    jsonschema.validate(response.get_json(), spec["components"]["schemas"]["Problem"])


def test_a_validation_problem_with_field_errors_matches_the_documented_schema():
    app = importlib.import_module("seal").create_app({"TESTING": True})
    response = app.test_client().post("/verify", json={"signature_base64": 5})
    assert response.status_code == 422 and response.get_json()["errors"]
    jsonschema.validate(response.get_json(), _spec(app)["components"]["schemas"]["Problem"])
