"""Offline codes: COSE_Sign1 with SM2 in CBOR, zlib, Base45; trust and status lists; the CLI."""

from __future__ import annotations

import json
import time
import zlib

import base45
import cbor2
import pytest
from click.testing import CliRunner

from common.crypto.gm import SM2PrivateKey
from licenses import offline_codes as oc

CLAIMS = {"id": "1.2.156.3005.2.X", "t": "T", "tn": "居住证", "n": "JZZ1", "i": "西安市公安局", "h": "张*",
          "hc": "6101**********1234", "vf": "2026-01-01", "vu": None, "f": {"name": "张三"}, "p": "办事", "s": 5}


@pytest.fixture(scope="module")
def key():
    return SM2PrivateKey.generate()


@pytest.fixture(scope="module")
def trust(key):
    return oc.TrustList.from_json(oc.trust_list_json("https://x/licenses", [(key.public_key(), "active")]))


def test_round_trip(key, trust):
    code = oc.make_code(CLAIMS, key, issuer="https://x/licenses", lifetime=60)
    assert code.startswith("XL1:") and len(code) < 1000
    result = oc.verify_code(code, trust)
    assert result.claims == CLAIMS and result.checks["status"]["skipped"] is True
    # the structure is a COSE_Sign1 (tag 18) with the documented SM2 header
    tag = cbor2.loads(zlib.decompress(base45.b45decode(code[4:])))
    assert tag.tag == 18 and cbor2.loads(tag.value[0]) == {1: -65601, 4: oc.key_id(key.public_key())}
    assert len(tag.value[3]) == 64


def _reencode(code: str, mutate) -> str:
    tag = cbor2.loads(zlib.decompress(base45.b45decode(code[4:])))
    parts = list(tag.value)
    mutate(parts)
    return "XL1:" + base45.b45encode(zlib.compress(cbor2.dumps(cbor2.CBORTag(18, parts)))).decode()


def test_altered_payload_is_refused(key, trust):
    code = oc.make_code(CLAIMS, key, issuer="i", lifetime=60)

    def alter(parts):
        body = cbor2.loads(parts[2])
        body[-65537]["f"]["name"] = "李四"
        parts[2] = cbor2.dumps(body)

    with pytest.raises(oc.OfflineCodeInvalid) as caught:
        oc.verify_code(_reencode(code, alter), trust)
    assert caught.value.code == "signature_invalid"


def test_unknown_key_forged_code_and_expiry(key, trust):
    forged = oc.make_code(CLAIMS, SM2PrivateKey.generate(), issuer="i", lifetime=60)
    with pytest.raises(oc.OfflineCodeInvalid) as caught:
        oc.verify_code(forged, trust)
    assert caught.value.code == "unknown_key"
    old = oc.make_code(CLAIMS, key, issuer="i", lifetime=60, now=time.time() - 120)
    with pytest.raises(oc.OfflineCodeInvalid) as caught:
        oc.verify_code(old, trust)
    assert caught.value.code == "code_expired"


@pytest.mark.parametrize(("text", "code"), [
    ("HC1:ABC", "malformed_code"), ("XL1:%%%", "malformed_code"), ("XL1:" + "A" * 5000, "code_too_large"),
    ("XL1:" + base45.b45encode(zlib.compress(cbor2.dumps([1, 2]))).decode(), "malformed_code"),
    ("XL1:" + base45.b45encode(b"not zlib at all").decode(), "malformed_code"),
])
def test_malformed_codes(trust, text, code):
    with pytest.raises(oc.OfflineCodeInvalid) as caught:
        oc.verify_code(text, trust)
    assert caught.value.code == code


def test_base45_decoding_agrees_with_the_package():
    import random

    rng = random.Random(45)
    for size in [0, 1, 2, 3, 4, 5, 64, 255, *(rng.randrange(1, 700) for _ in range(300))]:
        data = rng.randbytes(size)
        assert oc.b45decode(base45.b45encode(data).decode()) == data
    assert oc.b45decode("BB8") == b"AB" and oc.b45decode("%69 VD92EX0") == b"Hello!!"  # RFC 9285 examples
    # refused: outside the alphabet, lower case, a dangling character, a triple above 0xFFFF, a
    # trailing pair above 0xFF, non-ASCII
    for bad in ["GGW", "bb8", "BB8A", "::::", "BB8::", "BB8é"]:
        with pytest.raises(ValueError):
            oc.b45decode(bad)
        with pytest.raises(ValueError):
            base45.b45decode(bad)


def test_a_zip_bomb_is_refused_without_inflating_it(trust):
    bomb = "XL1:" + base45.b45encode(zlib.compress(b"\x00" * 1_000_000, 9)).decode()
    assert len(bomb) < oc.MAX_CODE_CHARS
    with pytest.raises(oc.OfflineCodeInvalid) as caught:
        oc.verify_code(bomb, trust)
    assert caught.value.code == "code_too_large"


def test_status_list_marks_revoked_and_is_signed(key, trust):
    listed = oc.status_list_json([5, 131071], 131072, key)
    assert listed["bits"] == 131072 and len(listed["list"]) < 1000
    status = oc.StatusList.from_json(listed, trust)
    assert status.is_set(5) and status.is_set(131071) and not status.is_set(6)
    with pytest.raises(oc.OfflineCodeInvalid) as caught:
        oc.verify_code(oc.make_code(CLAIMS, key, issuer="i", lifetime=60), trust, status)
    assert caught.value.code == "licence_not_valid"
    tampered = dict(listed, list=oc.status_list_json([], 131072, key)["list"])
    with pytest.raises(oc.OfflineCodeInvalid) as caught:
        oc.StatusList.from_json(tampered, trust)
    assert caught.value.code == "signature_invalid"


def test_node_end_to_end_with_the_cli(h, tmp_path):
    from licenses.cli import cli

    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], fields=["name"]).get_json()
    response = h.client.post(f"/my/authorisations/{auth['id']}/offline-code", headers=h.holder("p-zhang"))
    assert response.status_code == 201
    code = response.get_json()["code"]
    trust_path, status_path = tmp_path / "trust.json", tmp_path / "status.json"
    trust_path.write_text(json.dumps(h.client.get("/offline/trust-list").get_json()))
    status_path.write_text(json.dumps(h.client.get("/offline/status-list").get_json()))
    runner = CliRunner()
    args = ["verify-qr", code, "--trust-list", str(trust_path), "--status-list", str(status_path)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["valid"] is True and out["claims"]["f"] == {"name": "张三"}
    assert out["claims"]["id"] == permit["identifier"]
    # revoked, then a refreshed status list refuses the same code offline
    h.client.post(f"/licences/{permit['id']}/status", json={"action": "revoke", "reason": "迁出", "kind": "cancelled"},
                  headers=h.police)
    status_path.write_text(json.dumps(h.client.get("/offline/status-list").get_json()))
    result = runner.invoke(cli, args)
    assert result.exit_code == 1 and json.loads(result.output)["code"] == "licence_not_valid"


def test_no_offline_code_for_a_revoked_authorisation_or_licence(h):
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], fields=["name"]).get_json()
    h.client.delete(f"/my/authorisations/{auth['id']}", headers=h.holder("p-zhang"))
    response = h.client.post(f"/my/authorisations/{auth['id']}/offline-code", headers=h.holder("p-zhang"))
    assert response.status_code == 409 and response.get_json()["code"] == "authorisation_not_usable"
    other = h.authorise(permit["id"], fields=["name"]).get_json()
    h.client.post(f"/licences/{permit['id']}/status", json={"action": "suspend", "reason": "核查"}, headers=h.police)
    response = h.client.post(f"/my/authorisations/{other['id']}/offline-code", headers=h.holder("p-zhang"))
    assert response.status_code == 409 and response.get_json()["code"] == "licence_not_usable"
