"""docs/openapi/*.json are generated from the code (`make openapi`) and must not drift."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from common.config import SERVICES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "openapi"


@pytest.mark.parametrize("service", SERVICES)
def test_committed_document_matches_the_code(service):
    app = importlib.import_module(service).create_app({"TESTING": True})
    generated = json.loads(json.dumps(app.extensions["xsn_api"].spec.to_dict()))
    committed = json.loads((DOCS / f"{service}.json").read_text())
    assert committed == generated, f"docs/openapi/{service}.json is stale: run `make openapi`"


@pytest.mark.parametrize("service", SERVICES)
def test_document_is_valid_openapi(service):
    validate(json.loads((DOCS / f"{service}.json").read_text()))
