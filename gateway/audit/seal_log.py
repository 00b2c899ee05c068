"""The seal node's signature log, read for the auditor console over seal's auditor API.

A client-credentials token of ``AUDIT_SEAL_CLIENT_ID`` (``xsn-auditor``, scope ``audit:read``,
audience ``xsn:seal``) from identity's token endpoint at its internal URL, cached until shortly
before it expires; the calls go through :class:`common.http.ServiceClient` to seal's internal
URL. Seal records each query in its own auditor-query log under that client.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from common.http import ServiceClient


class SealLogUnavailable(Exception):
    """Seal's auditor API (or identity's token endpoint) did not answer as expected."""


# Keyed by identity's URL and the client: a token is only good with the identity that issued it.
_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_lock = threading.Lock()


def _client_secret(config: Mapping[str, Any], client_id: str) -> str | None:
    if config.get("AUDIT_SEAL_CLIENT_SECRET"):
        return str(config["AUDIT_SEAL_CLIENT_SECRET"])
    if config.get("ENV") == "production":
        return None
    try:  # the embedded run: identity's seed wrote the demo secrets here
        return json.loads((Path(config["VAR_DIR"]) / "clients.json").read_text())[client_id]["client_secret"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cache_key(config: Mapping[str, Any]) -> tuple[str, str]:
    return config["SERVICE_URLS"]["identity"], str(config.get("AUDIT_SEAL_CLIENT_ID") or "xsn-auditor")


def forget_token(config: Mapping[str, Any]) -> None:
    with _lock:
        _tokens.pop(_cache_key(config), None)


def client_token(config: Mapping[str, Any]) -> str:
    """:raise SealLogUnavailable: no secret configured, or identity refused."""
    key = _cache_key(config)
    client_id = key[1]
    with _lock:
        cached = _tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
    secret = _client_secret(config, client_id)
    if not secret:
        raise SealLogUnavailable(f"no client secret for {client_id} (XSN_AUDIT_SEAL_CLIENT_SECRET)")
    identity = ServiceClient(config["SERVICE_URLS"]["identity"], timeout=float(config.get("HTTP_TIMEOUT", 5.0)))
    try:
        response = identity.post("/oauth/token", auth=(client_id, secret),
                                 data={"grant_type": "client_credentials", "scope": "audit:read"})
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SealLogUnavailable(f"identity's token endpoint: {exc.__class__.__name__}") from None
    if response.status_code != 200 or "access_token" not in body:
        raise SealLogUnavailable(f"identity refused a token for {client_id} ({response.status_code})")
    with _lock:
        _tokens[key] = (body["access_token"], time.monotonic() + max(0, int(body.get("expires_in", 60)) - 30))
    return body["access_token"]


def seal_log_summary(config: Mapping[str, Any], *, limit: int = 10) -> dict[str, Any]:
    """``{"checkpoint": {...}, "entries": [...], "total": n}`` from seal's auditor API.

    :raise SealLogUnavailable: seal or identity cannot be reached or refused.
    """
    seal = ServiceClient(config["SERVICE_URLS"]["seal"], timeout=float(config.get("HTTP_TIMEOUT", 5.0)),
                         token_provider=lambda: client_token(config))
    try:
        checkpoint = seal.get("/log/checkpoint")
        if checkpoint.status_code == 401:  # revoked, or identity's keys rotated: one fresh token
            forget_token(config)
            checkpoint = seal.get("/log/checkpoint")
        search = seal.get("/log/search", params={"per_page": limit})
    except requests.RequestException as exc:
        raise SealLogUnavailable(f"the seal node: {exc.__class__.__name__}") from None
    if checkpoint.status_code != 200 or search.status_code != 200:
        raise SealLogUnavailable(f"the seal node answered {checkpoint.status_code}/{search.status_code}")
    try:
        found = search.json()
        return {"checkpoint": checkpoint.json(), "entries": found["items"], "total": found["total"]}
    except (ValueError, KeyError, TypeError):
        raise SealLogUnavailable("the seal node's answer does not fit its auditor API") from None
