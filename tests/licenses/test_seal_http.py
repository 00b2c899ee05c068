"""Issuing and verifying against the real seal node over HTTP (HttpSealClient).

The seal app runs on a free port with its own database; its seal for the approval bureau is
registered and granted to ``xsn-licenses`` through its admin API, as the seal seed must do
for the demo departments.
"""

from __future__ import annotations

import base64

import pytest
import requests

from common.http import ServiceClient
from common.peers.seal_client import HttpSealClient, SealUnavailable
from licenses.issuing import Deps


@pytest.fixture
def seal_url(make_app, serve_app, tokens, h):
    seal_app = make_app("seal")
    tokens.install(seal_app)
    admin = tokens.bearer(sub="admin-1", scope="seal:admin", client_id="xsn-console", aud="xsn:seal")
    client = seal_app.test_client()
    made = client.post("/seals", json={"org_code": h.BUREAU, "org_name": "西安市行政审批服务局", "kind": "license"},
                       headers=admin)
    assert made.status_code == 201, made.get_json()
    grant = client.post(f"/seals/{made.get_json()['id']}/grants",
                        json={"grantee_type": "client", "grantee": "xsn-licenses"}, headers=admin)
    assert grant.status_code == 201
    return serve_app(seal_app)


@pytest.fixture
def http_seal(app, tokens, seal_url):
    def token() -> str:
        return tokens.token(sub="xsn-licenses", client_id="xsn-licenses", scope="seal:sign", aud="xsn:seal")

    seal = HttpSealClient(ServiceClient(seal_url, token_provider=token))
    node = app.extensions["licenses"]
    node["deps"] = Deps(cipher=node["deps"].cipher, seal=seal)
    return seal


def test_a_licence_is_sealed_as_an_ses_signature_the_seal_node_verifies(h, http_seal, seal_url):
    response = h.issue_food(key="http-1")
    assert response.status_code == 201, response.get_json()
    licence = response.get_json()
    der = h.client.get(f"/my/licences/{licence['id']}/signature", headers=h.holder("p-zhao")).data
    document = h.client.get(f"/my/licences/{licence['id']}/document", headers=h.holder("p-zhao")).data
    check = requests.post(f"{seal_url}/verify", timeout=10, json={
        "signature_base64": base64.b64encode(der).decode(), "document_base64": base64.b64encode(document).decode()})
    body = check.json()
    assert body["valid"] is True and body["complete"] is True, body
    # a retry of the same request is a replay at both nodes: one licence, one signature
    assert h.issue_food(key="http-1").status_code == 200


def test_online_verification_asks_the_seal_node(h, http_seal):
    licence = h.issue_food().get_json()
    auth = h.client.post("/my/authorisations", headers=h.holder("p-zhao"), json={
        "licence_id": licence["id"], "fields": ["operator_name", "business_scope"], "purpose": "招投标资格审查",
        "audience": h.WINDOW_CLIENT, "minutes": 10, "max_uses": 2}).get_json()
    result = h.client.post("/verify", json={"code": auth["code"]}, headers=h.window)
    assert result.status_code == 200, result.get_json()
    seal_checks = result.get_json()["checks"]["seal"]
    assert seal_checks["ok"] is True and len(seal_checks["checks"]) == 5


def test_no_seal_for_the_department_is_a_refusal(h, http_seal):
    response = h.issue_residence()  # the police department has no seal at this seal node
    assert response.status_code == 409 and response.get_json()["code"] == "no_seal_for_issuer"


def test_seal_node_down_is_503_and_nothing_visible(h, app):
    seal = HttpSealClient(ServiceClient("http://127.0.0.1:9", retries=0, timeout=1,
                                        token_provider=lambda: "x"))
    node = app.extensions["licenses"]
    node["deps"] = Deps(cipher=node["deps"].cipher, seal=seal)
    response = h.issue_food(key="down")
    assert response.status_code == 503 and response.get_json()["code"] == SealUnavailable.code
    assert h.client.get("/licences", headers=h.issuer).get_json() == []


def test_batch_signing_speaks_the_contract(serve_app):
    """``POST /seals/<id>/sign-batch`` (contract 5): items in, signatures in the same order,
    the Idempotency-Key sent; a replay (200) is accepted like a first answer (201)."""
    from flask import Flask, jsonify, request

    seen = []
    fake = Flask("seal-batch")

    @fake.post("/seals/<seal_id>/sign-batch")
    def sign_batch(seal_id):
        seen.append((seal_id, request.headers.get("Idempotency-Key"), request.get_json()))
        items = request.get_json()["items"]
        signatures = [{"signature_id": f"s{i}", "seal_id": seal_id, "signature_base64": item["digest"],
                       "signed_at": "2026-12-01T00:00:00+00:00"} for i, item in enumerate(items)]
        return jsonify(signatures=signatures), 201 if len(seen) == 1 else 200

    seal = HttpSealClient(ServiceClient(serve_app(fake), token_provider=lambda: "t"))
    items = [("aa" * 32, "id-1"), ("bb" * 32, "id-2")]
    first = seal.sign_batch("seal-1", items, idempotency_key="k1")
    again = seal.sign_batch("seal-1", items, idempotency_key="k1")
    assert [s.signature_b64 for s in first] == ["aa" * 32, "bb" * 32] == [s.signature_b64 for s in again]
    assert seen[0] == ("seal-1", "k1", {"items": [{"digest": "aa" * 32, "property_info": "id-1"},
                                                   {"digest": "bb" * 32, "property_info": "id-2"}]})
