"""Wiring of the seams from configuration: the seal node, the message hub, identity.

Each peer is reached with :class:`common.http.ServiceClient` and a client-credentials token
of this node's client (``LICENSES_CLIENT_ID``, ``xsn-licenses``) for the peer's audience;
``memory`` in the configuration picks the in-process implementations instead.
"""

from __future__ import annotations

from flask import Flask

from common.crypto.keystore import load_kek
from common.crypto.pii import PiiCipher
from common.db import get_db
from common.http import RETRY_AFTER_MAX, ServiceClient
from common.peers.credentials import ClientCredentials, client_secret_source
from common.peers.notifier import HubNotifier, MemoryNotifier, NotifyFailed
from common.peers.seal_client import HttpSealClient, MemorySealClient, SealUnavailable

from .holders import IdentityHolderDirectory, MemoryHolderDirectory
from .issuing import Deps
from .verification_store import Stores


def init_peers(app: Flask) -> None:
    """Build the seams once per app: ``app.extensions["licenses"]`` holds them (and where online
    verification reads and writes, :class:`~licenses.verification_store.Stores`)."""
    config = app.config
    urls = config["SERVICE_URLS"]
    timeout = float(config.get("HTTP_TIMEOUT", 5.0))
    kek = load_kek(config)
    credentials = ClientCredentials(f"{urls['identity']}/oauth/token", config["LICENSES_CLIENT_ID"],
                                    client_secret_source(config, config["LICENSES_CLIENT_ID"],
                                                         "LICENSES_CLIENT_SECRET"), timeout=timeout)
    if config["LICENSES_SEAL_CLIENT"] == "memory":
        seal = MemorySealClient(timeout=timeout)
    else:
        # From the configuration (HTTP_TIMEOUT, HTTP_RETRIES, HTTP_RETRY_AFTER_MAX), as Deps says
        # to lifecycle.sealing_bound: the bound holds only if the client does what it assumes.
        seal = HttpSealClient(ServiceClient.from_config(urls["seal"], config, token_provider=credentials.provider(
                                  "xsn:seal", "seal:sign", unavailable=SealUnavailable)),
                              public=ServiceClient.from_config(urls["seal"], config),
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
    app.extensions["licenses"] = {"deps": Deps(cipher=PiiCipher.from_kek(kek, "licenses"), seal=seal,
                                                   seal_retries=int(config.get("HTTP_RETRIES", 2)),
                                                   seal_retry_after_max=float(config.get("HTTP_RETRY_AFTER_MAX",
                                                                                         RETRY_AFTER_MAX))),
                                  "kek": kek, "notifier": notifier, "directory": directory,
                                  "stores": Stores(get_db(app).engine,
                                                   pool_size=int(config["LICENSES_VERIFY_POOL_SIZE"]),
                                                   group_takes=bool(config["LICENSES_VERIFY_GROUP_TAKES"]))}
