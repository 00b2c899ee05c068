"""Wiring of the seams from configuration: the seal node, the message hub, identity.

Each peer is reached with :class:`common.http.ServiceClient` and a client-credentials token
of this node's client (``LICENSES_CLIENT_ID``, ``xsn-licenses``) for the peer's audience;
``memory`` in the configuration picks the in-process implementations instead.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import requests
from flask import Flask

from common.crypto.keystore import load_kek
from common.crypto.pii import PiiCipher
from common.http import ServiceClient

from .holders import IdentityHolderDirectory, MemoryHolderDirectory
from .issuing import Deps
from .notifier import HubNotifier, MemoryNotifier, NotifyFailed
from .seal_client import HttpSealClient, MemorySealClient, SealUnavailable


class ClientCredentials:
    """Client-credentials tokens from identity, one per audience, renewed a minute before expiry."""

    def __init__(self, token_url: str, client_id: str, secret_source, *, timeout: float = 5.0) -> None:
        self.token_url, self.client_id, self.secret_source, self.timeout = token_url, client_id, secret_source, timeout
        self._tokens: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def provider(self, audience: str, scope: str, unavailable=SealUnavailable):
        def token() -> str:
            cached = self._tokens.get(audience)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            secret = self.secret_source()
            if not secret:
                raise unavailable(f"no client secret for {self.client_id} (XSN_LICENSES_CLIENT_SECRET)")
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


def _secret_source(app: Flask):
    config = app.config

    def secret() -> str | None:
        if config.get("LICENSES_CLIENT_SECRET"):
            return str(config["LICENSES_CLIENT_SECRET"])
        if config.get("ENV") == "production":
            return None  # fail closed: production configures the secret
        try:
            path = Path(config["VAR_DIR"]) / "clients.json"
            return json.loads(path.read_text())[config["LICENSES_CLIENT_ID"]]["client_secret"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return secret


def init_peers(app: Flask) -> None:
    """Build the seams once per app: ``app.extensions["licenses"]`` holds them."""
    config = app.config
    urls = config["SERVICE_URLS"]
    timeout = float(config.get("HTTP_TIMEOUT", 5.0))
    kek = load_kek(config)
    credentials = ClientCredentials(f"{urls['identity']}/oauth/token", config["LICENSES_CLIENT_ID"],
                                    _secret_source(app), timeout=timeout)
    if config["LICENSES_SEAL_CLIENT"] == "memory":
        seal = MemorySealClient()
    else:
        seal = HttpSealClient(ServiceClient(urls["seal"], timeout=timeout,
                                            token_provider=credentials.provider("xsn:seal", "seal:sign")),
                              public=ServiceClient(urls["seal"], timeout=timeout),
                              verify_cache_seconds=float(config["LICENSES_SEAL_VERIFY_CACHE_SECONDS"]))
    if config["LICENSES_NOTIFIER"] == "memory":
        notifier = MemoryNotifier()
    else:
        notifier = HubNotifier(ServiceClient(urls["messaging"], timeout=timeout, token_provider=credentials.provider(
            "xsn:messaging", "messaging:send", unavailable=NotifyFailed)))
    if config["LICENSES_HOLDER_DIRECTORY"] == "memory":
        directory = MemoryHolderDirectory()
    else:
        directory = IdentityHolderDirectory(ServiceClient(urls["identity"], timeout=timeout))
    app.extensions["licenses"] = {"deps": Deps(cipher=PiiCipher.from_kek(kek, "licenses"), seal=seal),
                                  "kek": kek, "notifier": notifier, "directory": directory}
