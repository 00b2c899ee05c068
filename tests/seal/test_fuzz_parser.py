"""Fuzzing the untrusted-DER parsers: only SESFormatError may come out, and the API answers problem+json.

The seed corpus in ``tests/seal/corpus/`` (valid structures and known-bad shapes) is replayed
on every run; hypothesis then mutates it (bit flips, truncations, insertions, splices) and
also feeds raw bytes. Add any input that ever crashed the parser to the corpus.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seal import ca, ses, ses_verify
from seal.asn1 import SESFormatError

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.der"))
SEEDS = [path.read_bytes() for path in CORPUS]
STABLE_CODES = {"der_truncated", "der_trailing_data", "der_wrong_tag", "der_not_canonical", "der_oversized",
                "ses_malformed", "ses_wrong_oid", "ses_wrong_version", "ses_wrong_header", "cert_malformed",
                "cert_wrong_oid", "cert_wrong_curve"}


def _parse_all(data: bytes) -> None:
    for parse in (ses.parse_signature, ses.parse_seal, ca.parse_certificate):
        try:
            parse(data)
        except SESFormatError as exc:
            assert exc.code in STABLE_CODES, exc.code
    report = ses_verify.verify_ses_signature(data, None)
    assert report.error is None or report.error["code"] in STABLE_CODES


def test_corpus_is_present():
    names = {path.name for path in CORPUS}
    assert {"valid_signature.der", "truncated.der", "trailing.der", "wrong_outer_tag.der"} <= names


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_replay(path):
    data = path.read_bytes()
    _parse_all(data)
    if path.name == "valid_signature.der":
        assert ses_verify.verify_ses_signature(data, None).valid
    elif path.name.startswith(("truncated", "trailing", "wrong_", "indefinite", "huge", "empty", "octet")):
        with pytest.raises(SESFormatError):
            ses.parse_signature(data)


@st.composite
def mutated(draw):
    seed = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "splice"]))
        if not seed:
            break
        at = draw(st.integers(0, len(seed) - 1))
        if action == "flip":
            seed[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "truncate":
            del seed[at:]
        elif action == "insert":
            seed[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del seed[at:at + draw(st.integers(1, 16))]
        else:
            other = draw(st.sampled_from(SEEDS))
            start = draw(st.integers(0, len(other) - 1))
            seed[at:at + 32] = other[start:start + 32]
    return bytes(seed)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutations_never_crash(data):
    _parse_all(data)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_crash(data):
    _parse_all(data)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(mutated())
def test_api_answers_problem_json(client, data):
    response = client.post("/verify", json={"signature_base64": base64.b64encode(data).decode()})
    assert response.status_code in (200, 422), response.get_data(as_text=True)[:300]
    if response.status_code == 422:
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["code"] in STABLE_CODES
