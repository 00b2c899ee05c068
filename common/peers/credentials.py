"""Client-credentials tokens from identity for calls to other nodes, one per audience, cached
until a minute before they expire; in the embedded run the secret comes from the file identity's
seed writes (``var/clients.json``), in production only from configuration (fail closed)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from common.errors import ServiceUnavailable


class ClientCredentials:
    """Client-credentials tokens from identity, one per audience, renewed a minute before expiry."""

    def __init__(self, token_url: str, client_id: str, secret_source, *, timeout: float = 5.0) -> None:
        self.token_url, self.client_id, self.secret_source, self.timeout = token_url, client_id, secret_source, timeout
        self._tokens: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def provider(self, audience: str, scope: str, unavailable=ServiceUnavailable):
        def token() -> str:
            cached = self._tokens.get(audience)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            secret = self.secret_source()
            if not secret:
                raise unavailable(f"no client secret for {self.client_id}")
            try:
                response = requests.post(self.token_url, auth=(self.client_id, secret), timeout=self.timeout,
                                         data={"grant_type": "client_credentials", "scope": scope,
                                               "audience": audience})
            except requests.RequestException as exc:
                raise unavailable(f"identity did not answer: {type(exc).__name__}") from None
            if response.status_code != 200:
                raise unavailable(f"identity refused a token for {audience}: {response.status_code}")
            body = response.json()
            with self._lock:
                self._tokens[audience] = (time.monotonic() + max(10, int(body.get("expires_in", 60)) - 60),
                                          body["access_token"])
            return body["access_token"]
        return token


def client_secret_source(config: dict[str, Any], client_id: str, secret_key: str) -> Callable[[], str | None]:
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
