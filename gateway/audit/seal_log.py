"""The seal node's signature log, read for the auditor console over seal's auditor API.

A client-credentials token of ``AUDIT_SEAL_CLIENT_ID`` (``xsn-auditor``, scope ``audit:read``,
audience ``xsn:seal``) from identity's token endpoint at its internal URL, cached until shortly
before it expires; the calls go through :class:`common.http.ServiceClient` to seal's internal
URL. Seal records each query in its own auditor-query log under that client. Flask-free: the
console keeps one :class:`SealLog` per app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests

from common.http import ServiceClient
from common.peers.credentials import ClientCredentials, client_secret_source


class SealLogUnavailable(Exception):
    """Seal's auditor API (or identity's token endpoint) did not answer as expected."""


SCOPE, AUDIENCE = "audit:read", "xsn:seal"


class SealLog:
    """Seal's auditor API as the console reads it, with one app's client-credentials token.

    One per app (the console's pages keep it with ``app_singleton``): a token is only good with the
    identity that issued it, and a test suite runs several apps (each with its own identity and
    var/clients.json) in one process.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        identity = config["SERVICE_URLS"]["identity"]
        client_id = str(config.get("AUDIT_SEAL_CLIENT_ID") or "xsn-auditor")
        self.credentials = ClientCredentials(f"{identity}/oauth/token", client_id,
                                             client_secret_source(config, client_id, "AUDIT_SEAL_CLIENT_SECRET"),
                                             timeout=float(config.get("HTTP_TIMEOUT", 5.0)))
        self._token: Callable[[], str] = self.credentials.provider(AUDIENCE, SCOPE, SealLogUnavailable)

    def token(self) -> str:
        """:raise SealLogUnavailable: no secret configured, or identity refused or did not answer."""
        return self._token()

    def forget_token(self) -> None:
        self.credentials.forget(AUDIENCE, SCOPE)

    def summary(self, *, limit: int = 10) -> dict[str, Any]:
        """``{"checkpoint": {...}, "entries": [...], "total": n}`` from seal's auditor API.

        :raise SealLogUnavailable: seal or identity cannot be reached or refused.
        """
        config = self.config
        seal = ServiceClient(config["SERVICE_URLS"]["seal"], timeout=float(config.get("HTTP_TIMEOUT", 5.0)),
                             token_provider=self.token)
        try:
            checkpoint = seal.get("/log/checkpoint")
            if checkpoint.status_code == 401:  # revoked, or identity's keys rotated: one fresh token
                self.forget_token()
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
