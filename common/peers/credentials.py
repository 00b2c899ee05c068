"""Client-credentials tokens from identity for calls to other nodes, one per audience and scope,
cached until a minute before they expire; in the embedded run the secret comes from the file
identity's seed writes (``var/clients.json``), in production only from configuration (fail closed)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
import structlog

from common.errors import ServiceUnavailable

log = structlog.get_logger("xsn.peers.credentials")


class ClientCredentials:
    """Client-credentials tokens from identity, one per audience and scope, renewed a minute
    before expiry; one request at a time per token (threads that find it expired wait for it)."""

    def __init__(self, token_url: str, client_id: str, secret_source, *, timeout: float = 5.0) -> None:
        self.token_url, self.client_id, self.secret_source, self.timeout = token_url, client_id, secret_source, timeout
        self._tokens: dict[tuple[str, str], tuple[float, str]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def provider(self, audience: str, scope: str, unavailable=ServiceUnavailable, *,
                 fallback_scope: str | None = None) -> Callable[[], str]:
        """A callable returning a bearer token for ``audience`` with ``scope``.

        With ``fallback_scope``, a request identity refuses as ``invalid_scope`` (400: the
        client is registered without one of the scopes asked for) is asked again with the
        fallback, and ``identity_scope_refused`` is logged as a warning. Each renewal asks for
        ``scope`` first, so a corrected registration heals without a restart. Any other refusal
        is not retried.

        :raise unavailable: no secret, identity unreachable, or a token refused or unreadable.
        """
        key = (audience, scope)
        fallback = fallback_scope if fallback_scope != scope else None
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())

        def token() -> str:
            cached = self._tokens.get(key)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            with lock:
                cached = self._tokens.get(key)
                if cached and cached[0] > time.monotonic():  # another thread renewed it meanwhile
                    return cached[1]
                secret = self.secret_source()
                if not secret:
                    raise unavailable(f"no client secret for {self.client_id}")
                response = self._request(secret, audience, scope, unavailable)
                if fallback and _invalid_scope(response):
                    log.warning("identity_scope_refused", client_id=self.client_id, audience=audience,
                                scope=scope, fallback=fallback,
                                fix="register the client for the scope, or configure the scope it has")
                    response = self._request(secret, audience, fallback, unavailable)
                if response.status_code != 200:
                    raise unavailable(f"identity refused a token for {audience}: {response.status_code}")
                try:
                    body = response.json()
                    expires_in, access_token = int(body.get("expires_in", 60)), str(body["access_token"])
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise unavailable(f"identity answered an unreadable token for {audience}") from None
                self._tokens[key] = (time.monotonic() + max(10, expires_in - 60), access_token)
                return access_token

        return token

    def forget(self, audience: str, scope: str) -> None:
        """Drop the cached token for ``audience`` and ``scope`` (a peer answered 401 with it: revoked,
        or identity's keys rotated); the next call asks identity for a fresh one."""
        self._tokens.pop((audience, scope), None)

    def _request(self, secret: str, audience: str, scope: str, unavailable) -> requests.Response:
        try:
            return requests.post(self.token_url, auth=(self.client_id, secret), timeout=self.timeout,
                                 data={"grant_type": "client_credentials", "scope": scope, "audience": audience})
        except requests.RequestException as exc:
            raise unavailable(f"identity did not answer: {type(exc).__name__}") from None


def _invalid_scope(response: requests.Response) -> bool:
    if response.status_code != 400:
        return False
    try:
        return response.json().get("error") == "invalid_scope"
    except (ValueError, AttributeError):
        return False


def client_secret_source(config: Mapping[str, Any], client_id: str, secret_key: str) -> Callable[[], str | None]:
    """Where a node's client secret comes from: ``config[secret_key]``, or in the embedded run
    ``var/clients.json`` as identity's seed wrote it; None in production without the setting."""

    def secret() -> str | None:
        if config.get(secret_key):
            return str(config[secret_key])
        if config.get("ENV") == "production":
            return None  # fail closed: production configures the secret
        try:
            return json.loads((Path(config["VAR_DIR"]) / "clients.json").read_text())[client_id]["client_secret"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    return secret
