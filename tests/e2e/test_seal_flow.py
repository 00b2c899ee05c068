"""A demo organisation's seal signs a document through the gateway with a real service token.

The token comes from identity's token endpoint (client credentials of ``xsn-licenses``, whose
secret identity's seed writes to ``<var_dir>/clients.json``); the seal is one the seal seed
granted to that client. Verification through the gateway reports every check.
"""

from __future__ import annotations

import base64
import time

import pytest
import requests
from sqlalchemy import text

from common.crypto.gm import sm3
from tests.support.suite import client_token, service_database

pytestmark = pytest.mark.e2e


def _service_token(suite, client_id: str) -> str:
    assert (suite.var_dir / "clients.json").exists(), "identity's seed did not write clients.json"
    return client_token(suite, client_id, scope="seal:sign", resource="xsn:seal")["access_token"]


def test_demo_seal_signs_and_verifies_through_gateway(suite):
    gateway = suite.base_url("gateway")
    token = _service_token(suite, "xsn-licenses")
    headers = {"Authorization": f"Bearer {token}"}
    seals = requests.get(f"{gateway}/seal/seals/granted", headers=headers, timeout=10)
    assert seals.status_code == 200, seals.text
    # The demo organisation's licence seal (the departments' licence seals are granted to xsn-licenses too).
    license_seal = next(s for s in seals.json() if s["kind"] == "license" and s["org_name"] == "西安市示范科技有限公司")

    document = "电子证照：西安市示范科技有限公司 营业执照 (e2e)".encode()
    signed = requests.post(f"{gateway}/seal/seals/{license_seal['id']}/sign", headers=dict(
        headers, **{"Idempotency-Key": "e2e-seal-flow-1"}), timeout=10,
        json={"document_base64": base64.b64encode(document).decode()})
    assert signed.status_code == 201, signed.text  # a new key on a fresh suite: a new signature
    body = signed.json()
    assert body["document_digest"] == sm3(document).hex()
    assert isinstance(body["log_index"], int)

    verified = requests.post(f"{gateway}/seal/verify", timeout=10, json={
        "signature_base64": body["signature_base64"], "digest": sm3(document).hex()})
    assert verified.status_code == 200, verified.text
    report = verified.json()
    assert report["valid"] and report["complete"], report
    assert set(report["checks"]) == {"signature", "signer_in_seal", "seal", "signer_certificate", "document_digest"}
    assert all(check["ok"] and not check["skipped"] for check in report["checks"].values())

    # The payment client is not granted the licence seal.
    payment = _service_token(suite, "xsn-payment")
    refused = requests.post(f"{gateway}/seal/seals/{license_seal['id']}/sign", timeout=10,
                            headers={"Authorization": f"Bearer {payment}"},
                            json={"digest": sm3(document).hex()})
    assert refused.status_code == 403 and refused.json()["code"] == "seal_not_granted"


def test_the_worker_publishes_a_checkpoint_covering_a_new_signature_without_being_asked(suite):
    """Beat (embedded in the suite's worker) sends the checkpoint task every 5 s; nobody reads the log here.

    The seal database is watched directly: asking the API for a checkpoint would publish one
    itself (the lazy path), which is not what this test is about.
    """
    gateway = suite.base_url("gateway")
    headers = {"Authorization": f"Bearer {_service_token(suite, 'xsn-licenses')}"}
    seal = next(s for s in requests.get(f"{gateway}/seal/seals/granted", headers=headers, timeout=10).json()
                if s["kind"] == "license")
    signed = requests.post(f"{gateway}/seal/seals/{seal['id']}/sign", headers=headers, timeout=10,
                           json={"digest": sm3(f"beat {time.time_ns()}".encode()).hex()})
    assert signed.status_code == 201, signed.text
    index = signed.json()["log_index"]

    with service_database(suite, "seal") as engine:
        deadline, size = time.monotonic() + 45, None
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                size = conn.execute(text("SELECT max(tree_size) FROM log_checkpoints")).scalar()
            if size is not None and size > index:
                break
            time.sleep(0.5)
    assert size is not None and size > index, f"no checkpoint covers entry {index} (newest size {size})"
