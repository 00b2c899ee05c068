"""Wiring of the payment node's peers from configuration: the seal node (e-receipts) and the
message hub (payers' notices), reached with :class:`common.http.ServiceClient` and this node's
client-credentials token (``PAYMENT_CLIENT_ID``, ``xsn-payment``); ``memory`` in the
configuration picks the in-process implementations instead (tests, a node run on its own)."""

from __future__ import annotations

from flask import Flask

from common.http import ServiceClient
from common.peers.credentials import ClientCredentials, client_secret_source
from common.peers.notifier import HubNotifier, MemoryNotifier, NotifyFailed
from common.peers.seal_client import HttpSealClient, MemorySealClient, SealUnavailable


def init_peers(app: Flask) -> None:
    config = app.config
    urls = config["SERVICE_URLS"]
    timeout = float(config.get("HTTP_TIMEOUT", 5.0))
    credentials = ClientCredentials(f"{urls['identity']}/oauth/token", config["PAYMENT_CLIENT_ID"],
                                    client_secret_source(config, config["PAYMENT_CLIENT_ID"], "PAYMENT_CLIENT_SECRET"),
                                    timeout=timeout)
    if config["PAYMENT_SEAL_CLIENT"] == "memory":
        app.extensions["payment_sealer"] = MemorySealClient()
    else:
        app.extensions["payment_sealer"] = HttpSealClient(
            ServiceClient(urls["seal"], timeout=timeout,
                          token_provider=credentials.provider("xsn:seal", "seal:sign", unavailable=SealUnavailable)),
            public=ServiceClient(urls["seal"], timeout=timeout))
    if config["PAYMENT_NOTIFIER"] == "memory":
        app.extensions["payment_notifier"] = MemoryNotifier()
    else:
        app.extensions["payment_notifier"] = HubNotifier(ServiceClient(
            urls["messaging"], timeout=timeout,
            token_provider=credentials.provider("xsn:messaging", "messaging:send", unavailable=NotifyFailed)))
