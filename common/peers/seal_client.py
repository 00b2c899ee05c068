"""The seal node, as the nodes that seal documents see it: find a department's seal, sign, verify.

:class:`HttpSealClient` talks to the seal node's API (``/seals/granted``, ``/seals/<id>/sign``,
``/seals/<id>/sign-batch``, ``/verify``) with the calling node's client-credentials token (e.g.
``xsn-licenses`` or ``xsn-payment``, scope ``seal:sign``). :class:`MemorySealClient` signs in process with real SM2
keys, for unit tests and a node run without a seal node; its signatures are plain SM2 DER over
the digest, not ``SES_Signature``, and only it verifies them.

Every signing call carries an idempotency key derived from the licence, so a retry after a
timeout never makes a second signature.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from common.crypto.gm import GMError, SM2PrivateKey, sm3
from common.errors import Problem, ServiceUnavailable
from common.http import ServiceClient
from common.ttl_cache import TtlCache


class SealUnavailable(ServiceUnavailable):
    code, title = "seal_unavailable", "The seal node is unavailable"


class NoSealForIssuer(Problem):
    status, code, title = 409, "no_seal_for_issuer", "The issuing department has no usable seal"


@dataclass(frozen=True)
class SealSignature:
    signature_id: str
    seal_id: str
    signature_b64: str
    signed_at: datetime


@dataclass(frozen=True)
class SealCheck:
    valid: bool
    checks: dict[str, Any] = field(default_factory=dict)


class SealClient(Protocol):
    timeout: float  # seconds one request to the seal node waits to connect, and for each read

    def seal_for(self, org_code: str, kind: str) -> str:
        """The id of a seal of ``org_code`` of ``kind`` granted to this node. :raise NoSealForIssuer:"""

    def sign(self, seal_id: str, digest_hex: str, *, idempotency_key: str, property_info: str) -> SealSignature:
        """:raise SealUnavailable: :raise NoSealForIssuer: the seal node refused (seal suspended, no grant)."""

    def sign_batch(self, seal_id: str, items: list[tuple[str, str]], *, idempotency_key: str) -> list[SealSignature]:
        """``items`` = ``(digest_hex, property_info)``; signatures in the same order. Raises as :meth:`sign`."""

    def verify(self, signature_b64: str, digest_hex: str, *, signature_sm3: str | None = None) -> SealCheck:
        """Never raises for a bad signature (``valid`` false); :raise SealUnavailable:

        ``signature_sm3``: the SM3 (hex) of ``signature_b64``'s bytes, when the caller keeps it
        beside the signature (the verdict cache's key, otherwise computed on every call: 8 µs for
        a single licence's 2.7 kB of Base64, 61 µs for a bulk-issued one's 23 kB, best of five
        runs). It must be that signature's: it names the verdict returned."""


def signature_digest(signature_b64: str) -> str:
    """The SM3 (hex) of a signature's Base64 text: what :meth:`SealClient.verify` keys its verdicts by."""
    return sm3(signature_b64.encode()).hex()


def _parse_signature(data: dict[str, Any]) -> SealSignature:
    return SealSignature(signature_id=data["signature_id"], seal_id=data["seal_id"],
                         signature_b64=data["signature_base64"], signed_at=datetime.fromisoformat(data["signed_at"]))


class HttpSealClient:
    def __init__(self, client: ServiceClient, *, public: ServiceClient | None = None,
                 verify_cache_seconds: float = 60.0) -> None:
        self.client = client
        # /verify is open at the seal node: no token is spent (or needed) on it
        self.public = public or client
        # A department's seal for a minute (a node is granted a handful); valid verdicts only.
        self._seals: TtlCache[tuple[str, str], str] = TtlCache(60.0, 1024)
        self._verified: TtlCache[tuple[str, str], SealCheck] = TtlCache(verify_cache_seconds, 10_000)

    @property
    def timeout(self) -> float:
        return self.client.timeout

    def _call(self, method: str, path: str, *, public: bool = False, **kwargs) -> requests.Response:
        try:
            response = (self.public if public else self.client).request(method, path, **kwargs)
        except requests.RequestException as exc:
            raise SealUnavailable(f"the seal node did not answer: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code in (401, 429):
            raise SealUnavailable(f"the seal node answered {response.status_code}")
        return response

    def seal_for(self, org_code: str, kind: str) -> str:
        cached = self._seals.get((org_code, kind))
        if cached is not None:
            return cached
        response = self._call("GET", "/seals/granted")
        if response.status_code != 200:
            raise SealUnavailable(f"the seal node answered {response.status_code} listing granted seals")
        for seal in response.json():
            if seal.get("org_code") == org_code and seal.get("kind") == kind and seal.get("status") == "active":
                self._seals.put((org_code, kind), seal["id"])
                return seal["id"]
        raise NoSealForIssuer(f"no active {kind} seal of {org_code} is granted to this node")

    def _refused(self, response: requests.Response) -> Problem:
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = body.get("code", response.status_code)
        return NoSealForIssuer(f"the seal node refused: {code}: {body.get('detail', '')}")

    def sign(self, seal_id: str, digest_hex: str, *, idempotency_key: str, property_info: str) -> SealSignature:
        response = self._call("POST", f"/seals/{seal_id}/sign", headers={"Idempotency-Key": idempotency_key},
                              json={"digest": digest_hex, "property_info": property_info})
        if response.status_code not in (200, 201):
            raise self._refused(response)
        return _parse_signature(response.json())

    def sign_batch(self, seal_id: str, items: list[tuple[str, str]], *, idempotency_key: str) -> list[SealSignature]:
        body = {"items": [{"digest": digest, "property_info": info} for digest, info in items]}
        response = self._call("POST", f"/seals/{seal_id}/sign-batch", headers={"Idempotency-Key": idempotency_key},
                              json=body)
        if response.status_code not in (200, 201):
            raise self._refused(response)
        signatures = [_parse_signature(item) for item in response.json()["signatures"]]
        if len(signatures) != len(items):
            raise SealUnavailable("the seal node answered a batch of the wrong length")
        return signatures

    def verify(self, signature_b64: str, digest_hex: str, *, signature_sm3: str | None = None) -> SealCheck:
        key = (signature_sm3 or signature_digest(signature_b64), digest_hex)
        cached = self._verified.get(key)
        if cached is not None:
            return cached
        response = self._call("POST", "/verify", public=True,
                              json={"signature_base64": signature_b64, "digest": digest_hex})
        if response.status_code == 422:
            return SealCheck(False, {"format": {"ok": False, "detail": "not an SES_Signature"}})
        if response.status_code != 200:
            raise SealUnavailable(f"the seal node answered {response.status_code} to a verification")
        body = response.json()
        result = SealCheck(bool(body.get("valid")), body.get("checks") or {})
        if result.valid:  # an invalid verdict is asked again every time
            self._verified.put(key, result)
        return result


class MemorySealClient:
    """In-process seals: one SM2 key per (organisation, kind), created on first use."""

    def __init__(self, timeout: float = 5.0) -> None:
        # Nothing here waits; the timeout a node's HTTP client would have (its HTTP_TIMEOUT), for
        # what callers derive from it.
        self.timeout = timeout
        self.keys: dict[str, SM2PrivateKey] = {}
        self.signed: dict[str, SealSignature] = {}  # idempotency key -> signature
        self.fail_next = 0  # tests: this many signing calls fail as if the seal node were down
        self.refuse: set[str] = set()  # tests: org codes whose seals are suspended
        self.batches = 0
        self.batch_items: dict[str, list[tuple[str, str]]] = {}  # idempotency key -> the batch first sent

    def seal_for(self, org_code: str, kind: str) -> str:
        if org_code in self.refuse:
            raise NoSealForIssuer(f"the {kind} seal of {org_code} is suspended")
        seal_id = f"mem-{org_code}-{kind}"
        self.keys.setdefault(seal_id, SM2PrivateKey.generate())
        return seal_id

    def _sign_one(self, seal_id: str, digest_hex: str, key: str) -> SealSignature:
        if key in self.signed:
            return self.signed[key]
        der = self.keys[seal_id].sign(bytes.fromhex(digest_hex))
        signature = SealSignature(signature_id=f"sig-{len(self.signed) + 1}", seal_id=seal_id,
                                  signature_b64=base64.b64encode(der).decode(), signed_at=datetime.now(UTC))
        self.signed[key] = signature
        return signature

    def sign(self, seal_id: str, digest_hex: str, *, idempotency_key: str, property_info: str) -> SealSignature:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise SealUnavailable("the seal node did not answer: simulated")
        return self._sign_one(seal_id, digest_hex, idempotency_key)

    def sign_batch(self, seal_id: str, items: list[tuple[str, str]], *, idempotency_key: str) -> list[SealSignature]:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise SealUnavailable("the seal node did not answer: simulated")
        # Like the seal node: a batch sent again under its key is replayed only if it asks for
        # the very same signatures (422 otherwise, which HttpSealClient raises as NoSealForIssuer).
        first = self.batch_items.setdefault(idempotency_key, list(items))
        if first != list(items):
            raise NoSealForIssuer("the seal node refused: idempotency_mismatch: "
                                  f"the batch {idempotency_key} was first sent with other items")
        self.batches += 1
        return [self._sign_one(seal_id, digest, f"{idempotency_key}/{i}") for i, (digest, _) in enumerate(items)]

    def verify(self, signature_b64: str, digest_hex: str, *, signature_sm3: str | None = None) -> SealCheck:
        for key in self.keys.values():
            try:
                key.public_key().verify(bytes.fromhex(digest_hex), base64.b64decode(signature_b64))
            except (GMError, ValueError):
                continue
            return SealCheck(True, {"signature": {"ok": True, "detail": "SM2 (in-memory seal)"}})
        return SealCheck(False, {"signature": {"ok": False, "detail": "no in-memory seal made this signature"}})
