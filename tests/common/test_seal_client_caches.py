"""HttpSealClient's two caches: a department's seal, and valid verdicts only (never a refusal)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from common.peers.seal_client import HttpSealClient, NoSealForIssuer


class FakeSealNode:
    """Answers like the seal node's ``/seals/granted`` and ``/verify``; counts the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.valid = True
        self.seals = [{"id": "seal-1", "org_code": "ORG1", "kind": "licence", "status": "active"}]

    def request(self, method: str, path: str, **kwargs):
        self.calls.append((method, path))
        body = self.seals if path == "/seals/granted" else {"valid": self.valid, "checks": {}}
        return SimpleNamespace(status_code=200, json=lambda: body)


@pytest.fixture
def node():
    return FakeSealNode()


def test_a_valid_verdict_is_asked_once(node):
    client = HttpSealClient(node)
    assert client.verify("c2ln", "ab" * 32).valid and client.verify("c2ln", "ab" * 32).valid
    assert node.calls == [("POST", "/verify")]
    assert client.verify("c2ln", "cd" * 32).valid  # another digest is another question
    assert len(node.calls) == 2


def test_an_invalid_verdict_is_asked_every_time(node):
    client = HttpSealClient(node)
    node.valid = False
    assert not client.verify("c2ln", "ab" * 32).valid and not client.verify("c2ln", "ab" * 32).valid
    assert node.calls == [("POST", "/verify")] * 2
    node.valid = True
    assert client.verify("c2ln", "ab" * 32).valid
    assert len(node.calls) == 3


def test_no_verdict_cache_with_zero_seconds(node):
    client = HttpSealClient(node, verify_cache_seconds=0)
    client.verify("c2ln", "ab" * 32)
    client.verify("c2ln", "ab" * 32)
    assert len(node.calls) == 2


def test_a_departments_seal_is_looked_up_once_and_a_missing_one_every_time(node):
    client = HttpSealClient(node)
    assert client.seal_for("ORG1", "licence") == client.seal_for("ORG1", "licence") == "seal-1"
    assert node.calls == [("GET", "/seals/granted")]
    for _ in range(2):
        with pytest.raises(NoSealForIssuer):
            client.seal_for("ORG2", "licence")
    assert len(node.calls) == 3
