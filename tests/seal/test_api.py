"""The seal API over the Flask test client: management, grants, signing, verification, the CA."""

from __future__ import annotations

import base64

from asn1crypto import x509

from common.crypto.gm import sm3
from seal import ses, ses_verify

DOC = "西安市某项行政许可决定书".encode() * 20


def _sign(client, seal_id, headers, *, document=DOC, key=None, **extra):
    if key:
        headers = dict(headers, **{"Idempotency-Key": key})
    body = {"document_base64": base64.b64encode(document).decode(), **extra}
    return client.post(f"/seals/{seal_id}/sign", json=body, headers=headers)


def test_create_list_and_export(client, admin, seal_id):
    listed = client.get("/seals", headers=admin).get_json()
    assert [s["id"] for s in listed] == [seal_id]
    seal = listed[0]
    assert seal["status"] == "active" and seal["usage_count"] == 0 and seal["kind"] == "contract"
    assert seal["name"].endswith("合同专用章") and len(seal["es_id"]) == 16
    image = client.get(f"/seals/{seal_id}/image")
    assert image.status_code == 200 and image.mimetype == "image/png" and image.data.startswith(b"\x89PNG")
    der = client.get(f"/seals/{seal_id}/eseal").data
    parsed = ses.parse_seal(der)
    assert parsed["eSealInfo"]["esID"].native == seal["es_id"]


def test_create_validation(client, admin):
    bad = client.post("/seals", json={"org_code": "91610113MA6TXX0011", "org_name": "x", "kind": "contract"},
                      headers=admin)
    assert bad.status_code == 422 and bad.get_json()["code"] == "invalid_credit_code"
    kind = client.post("/seals", json={"org_code": "91110000600037341L", "org_name": "x", "kind": "nope"},
                       headers=admin)
    assert kind.status_code == 422
    png = client.post("/seals", json={"org_code": "91110000600037341L", "org_name": "x", "kind": "official",
                                      "image_base64": base64.b64encode(b"GIF89a....").decode()}, headers=admin)
    assert png.status_code == 422 and png.get_json()["code"] == "image_not_png"


def test_management_needs_admin_scope(client, tokens, signer_headers):
    assert client.get("/seals").status_code == 401
    assert client.get("/seals", headers=signer_headers).get_json()["code"] == "insufficient_scope"


def test_sign_and_verify_all_checks(client, seal_id, signer_headers):
    response = _sign(client, seal_id, signer_headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["document_digest"] == sm3(DOC).hex()
    assert isinstance(body["log_index"], int)  # the signature log is installed
    der = base64.b64decode(body["signature_base64"])
    assert sm3(der).hex() == body["signature_digest"]
    verified = client.post("/verify", json={"signature_base64": body["signature_base64"],
                                            "document_base64": base64.b64encode(DOC).decode()}).get_json()
    assert verified["valid"] and verified["complete"], verified
    assert set(verified["checks"]) == set(ses_verify.CHECK_NAMES)
    assert all(check["ok"] for check in verified["checks"].values())
    wrong = client.post("/verify", json={"signature_base64": body["signature_base64"],
                                         "digest": sm3(b"other").hex()}).get_json()
    assert not wrong["valid"] and wrong["checks"]["document_digest"]["ok"] is False
    assert wrong["checks"]["signature"]["ok"] is True


def test_grant_required(client, tokens, seal_id):
    other = tokens.bearer(sub="svc-payment", scope="seal:sign", client_id="xsn-payment")
    refused = _sign(client, seal_id, other)
    assert refused.status_code == 403 and refused.get_json()["code"] == "seal_not_granted"
    no_scope = tokens.bearer(sub="svc-licenses", scope="seal:verify", client_id="xsn-licenses")
    assert _sign(client, seal_id, no_scope).get_json()["code"] == "insufficient_scope"


def test_staff_subject_grant(client, tokens, admin, seal_id):
    staff = tokens.bearer(sub="person-42", scope="seal:sign", client_id="xsn-web")
    assert _sign(client, seal_id, staff).status_code == 403
    client.post(f"/seals/{seal_id}/grants", json={"grantee_type": "subject", "grantee": "person-42"}, headers=admin)
    assert _sign(client, seal_id, staff).status_code == 201
    grants = client.get(f"/seals/{seal_id}/grants", headers=admin).get_json()
    staff_grant = next(g for g in grants if g["grantee"] == "person-42")
    assert client.delete(f"/seals/{seal_id}/grants/{staff_grant['id']}", headers=admin).status_code == 204
    assert _sign(client, seal_id, staff).status_code == 403


def test_idempotency(client, seal_id, signer_headers):
    first = _sign(client, seal_id, signer_headers, key="order-1")
    again = _sign(client, seal_id, signer_headers, key="order-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    conflict = _sign(client, seal_id, signer_headers, key="order-1", document=b"a different document")
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "idempotency_key_reused"
    other = _sign(client, seal_id, signer_headers, key="order-2")
    assert other.status_code == 201 and other.get_json()["signature_id"] != first.get_json()["signature_id"]


def test_suspend_resume_revoke(client, admin, seal_id, signer_headers):
    signed = _sign(client, seal_id, signer_headers).get_json()
    no_reason = client.post(f"/seals/{seal_id}/status", json={"action": "suspend"}, headers=admin)
    assert no_reason.status_code == 422
    assert client.post(f"/seals/{seal_id}/status", json={"action": "suspend", "reason": "年检"},
                       headers=admin).get_json()["status"] == "suspended"
    refused = _sign(client, seal_id, signer_headers)
    assert refused.status_code == 409 and refused.get_json()["code"] == "seal_suspended"
    assert client.post(f"/seals/{seal_id}/status", json={"action": "resume"}, headers=admin).status_code == 200
    assert _sign(client, seal_id, signer_headers).status_code == 201
    revoked = client.post(f"/seals/{seal_id}/status", json={"action": "revoke", "reason": "印章遗失"}, headers=admin)
    assert revoked.get_json()["status"] == "revoked"
    assert _sign(client, seal_id, signer_headers).get_json()["code"] == "seal_revoked"
    assert client.post(f"/seals/{seal_id}/status", json={"action": "resume"}, headers=admin).status_code == 409
    history = client.get(f"/seals/{seal_id}/history", headers=admin).get_json()
    assert [e["action"] for e in history] == ["created", "grant_added", "suspend", "resume", "revoke"]
    # Signed before the revocation: still valid at signing time.
    report = client.post("/verify", json={"signature_base64": signed["signature_base64"],
                                          "digest": signed["document_digest"]}).get_json()
    assert report["valid"], report
    assert "valid at signing time, seal since revoked" in report["checks"]["seal"]["detail"]
    seal = client.get(f"/seals/{seal_id}", headers=admin).get_json()
    status = client.get(f"/ca/certificates/{seal['signer_serial']}").get_json()
    assert status["status"] == "revoked" and status["revocation_reason"] == "印章遗失"
    assert seal["usage_count"] == 2


def test_malformed_signatures_are_problems(client, seal_id, signer_headers):
    der = base64.b64decode(_sign(client, seal_id, signer_headers).get_json()["signature_base64"])
    cases = {
        "der_truncated": der[:-10],
        "der_trailing_data": der + b"\x00\x00",
        "der_wrong_tag": b"\x31" + der[1:],
    }
    for code, data in cases.items():
        response = client.post("/verify", json={"signature_base64": base64.b64encode(data).decode()})
        assert response.status_code == 422, code
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["code"] == code
    not_b64 = client.post("/verify", json={"signature_base64": "***"})
    assert not_b64.status_code == 422 and not_b64.get_json()["code"] == "invalid_base64"


def test_document_size_limit(make_app, tokens, admin):
    app = make_app("seal", SEAL_MAX_DOCUMENT_BYTES=100)
    tokens.install(app)
    client = app.test_client()
    sid = client.post("/seals", json={"org_code": "91110000600037341L", "org_name": "某单位", "kind": "official"},
                      headers=admin).get_json()["id"]
    client.post(f"/seals/{sid}/grants", json={"grantee_type": "client", "grantee": "c"}, headers=admin)
    headers = tokens.bearer(sub="s", scope="seal:sign", client_id="c")
    too_big = _sign(client, sid, headers, document=b"x" * 101)
    assert too_big.status_code == 413 and too_big.get_json()["code"] == "document_too_large"
    assert _sign(client, sid, headers, document=b"x" * 100).status_code == 201
    both = client.post(f"/seals/{sid}/sign", json={"digest": "00" * 32, "document_base64": ""}, headers=headers)
    assert both.status_code == 422


def test_ca_certificate(client, seal_id):
    der = client.get("/ca/certificate").data
    cert = x509.Certificate.load(der)
    assert cert["signature_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.501"
    pem = client.get("/ca/certificate?format=pem").data
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    serial = format(cert.serial_number, "x")
    status = client.get(f"/ca/certificates/{serial}").get_json()
    assert status["role"] == "maker" and status["status"] == "active"
    assert client.get("/ca/certificates/abc123").status_code == 404


def test_replace_image(client, admin, seal_id):
    from seal.images import generate_seal_png

    before = client.get(f"/seals/{seal_id}/eseal").data
    png = generate_seal_png("另一个名字")
    response = client.put(f"/seals/{seal_id}/image", json={"image_base64": base64.b64encode(png).decode()},
                          headers=admin)
    assert response.status_code == 200 and response.get_json()["image_generated"] is False
    after = client.get(f"/seals/{seal_id}/eseal").data
    assert after != before
    assert ses.parse_seal(after)["eSealInfo"]["picture"]["data"].native == png


def test_granted_seals_listing(client, tokens, seal_id, signer_headers):
    listed = client.get("/seals/granted", headers=signer_headers).get_json()
    assert [s["id"] for s in listed] == [seal_id]
    other = tokens.bearer(sub="x", scope="seal:sign", client_id="xsn-payment")
    assert client.get("/seals/granted", headers=other).get_json() == []


def test_seed_is_idempotent(app):
    from seal import seed
    from seal.models import Grant, Seal

    seed.seed(app)
    seed.seed(app)
    from common.db import get_db

    with get_db(app).session() as session:
        seals = session.query(Seal).all()
        assert sorted((s.org_code, s.kind) for s in seals) == sorted([
            *((seed.DEMO_ORG_CODE, kind) for kind in ("contract", "finance", "license", "official")),
            ("11610100MB0X00001G", "license"),  # 西安市行政审批服务局 (licences)
            ("11610100MB0X00002K", "license"),  # 西安市公安局 (licences)
            ("11610100MB29613528", "finance"),  # 西安市市场监督管理局 (payment's e-receipts)
        ])
        grants = {(s.org_code, s.kind, g.grantee) for s in seals
                  for g in session.query(Grant).filter_by(seal_id=s.id)}
        assert session.query(Grant).count() == 9
        assert {("11610100MB0X00001G", "license", "xsn-licenses"), ("11610100MB0X00002K", "license", "xsn-licenses"),
                ("11610100MB29613528", "finance", "xsn-payment")} <= grants
