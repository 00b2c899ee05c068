"""The hub's parts built from configuration: directory, channels, dispatcher, limits.

Everything here reads a config mapping (a Flask app's ``config`` or the worker's copy of it);
the domain modules get the built parts as arguments.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
import structlog

from common.config import local_secret
from common.http import ServiceClient
from messaging.channels import Channel
from messaging.channels.email import EmailChannel, SmtpSettings
from messaging.channels.inapp import InboxChannel
from messaging.channels.sms import SmsChannel
from messaging.delivery import DeliverySettings
from messaging.directory import Directory, IdentityDirectory, MemoryDirectory
from messaging.sending import SendLimits


def floats(value: Any) -> tuple[float, ...]:
    if isinstance(value, list | tuple):
        return tuple(float(v) for v in value)
    return tuple(float(v) for v in str(value).split(",") if v.strip())


def delivery_settings(config: Mapping[str, Any]) -> DeliverySettings:
    return DeliverySettings(retry_schedule=floats(config["MESSAGING_RETRY_SCHEDULE"]),
                            webhook_schedule=floats(config["MESSAGING_WEBHOOK_RETRY_SCHEDULE"]),
                            batch_size=int(config["MESSAGING_BATCH_SIZE"]),
                            stuck_after=float(config["MESSAGING_STUCK_AFTER"]),
                            webhook_disable_after=int(config["MESSAGING_WEBHOOK_DISABLE_AFTER"]))


def send_limits(config: Mapping[str, Any]) -> SendLimits:
    return SendLimits(max_recipients=int(config["MESSAGING_MAX_RECIPIENTS"]),
                      batch_size=int(config["MESSAGING_BATCH_SIZE"]),
                      app_limit=str(config["MESSAGING_APP_RATE_LIMIT"]),
                      recipient_limit=str(config["MESSAGING_RECIPIENT_RATE_LIMIT"]),
                      digest_window=float(config["MESSAGING_DIGEST_WINDOW"]))


def allow_private_webhooks(config: Mapping[str, Any]) -> bool:
    """Loopback and private webhook URLs: allowed embedded, refused in production unless set."""
    value = config.get("MESSAGING_WEBHOOK_ALLOW_PRIVATE")
    if value is None or value == "":
        return config.get("ENV") != "production"
    return str(value).lower() in ("1", "true", "yes")


def sms_secret(config: Mapping[str, Any]) -> str:
    return str(config.get("MESSAGING_SMS_ACCESS_KEY_SECRET") or local_secret(dict(config), "sms_access_key", 16).hex())


def receipt_token(config: Mapping[str, Any]) -> str:
    return str(config.get("MESSAGING_SMS_RECEIPT_TOKEN") or local_secret(dict(config), "sms_receipt_token", 16).hex())


def sms_url(config: Mapping[str, Any]) -> str:
    return str(config.get("MESSAGING_SMS_URL") or f"http://127.0.0.1:{config['MESSAGING_SMS_SIMULATOR_PORT']}/")


def smtp_settings(config: Mapping[str, Any]) -> SmtpSettings:
    return SmtpSettings(host=str(config["MESSAGING_SMTP_HOST"]), port=int(config["MESSAGING_SMTP_PORT"]),
                        starttls=str(config["MESSAGING_SMTP_STARTTLS"]).lower() in ("1", "true", "yes"),
                        username=config.get("MESSAGING_SMTP_USERNAME") or None,
                        password=config.get("MESSAGING_SMTP_PASSWORD") or None,
                        sender=str(config["MESSAGING_SMTP_SENDER"]))


def channels(config: Mapping[str, Any]) -> dict[str, Channel]:
    """Fresh channel adapters (one set per batch: the SMTP connection is per batch)."""
    return {"inapp": InboxChannel(),
            "sms": SmsChannel(sms_url(config), str(config["MESSAGING_SMS_ACCESS_KEY_ID"]), sms_secret(config)),
            "email": EmailChannel(smtp_settings(config))}


BASE_SCOPE = "identity:people:read"  # what the people endpoints need; contacts come masked without *:full

log = structlog.get_logger("xsn.messaging.directory")


class ClientCredentials:
    """A cached client-credentials access token from identity (renewed 30 s before it expires).

    With a ``fallback_scope``, a request identity refuses as ``invalid_scope`` (the client is
    registered without one of the scopes asked for, e.g. ``email:full``) is asked again with
    the fallback, and a warning names both: the hub keeps working with masked contacts, which
    the directory drops (in-app messages still go; SMS / e-mail to those people fail as having
    no contact). Each renewal asks for the full scope first, so a corrected registration heals
    without a restart.
    """

    def __init__(self, token_url: str, client_id: str, secret: Callable[[], str | None], scope: str,
                 timeout: float = 5.0, fallback_scope: str | None = None) -> None:
        self.token_url, self.client_id, self.secret, self.scope, self.timeout = \
            token_url, client_id, secret, scope, timeout
        self.fallback_scope = fallback_scope if fallback_scope != scope else None
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def _request(self, scope: str) -> requests.Response:
        return requests.post(self.token_url, auth=(self.client_id, self.secret() or ""), timeout=self.timeout,
                             data={"grant_type": "client_credentials", "scope": scope})

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._token[1] < time.time() + 30:
                response = self._request(self.scope)
                if self.fallback_scope and _invalid_scope(response):
                    log.warning("identity_scope_refused", client_id=self.client_id, scope=self.scope,
                                fallback=self.fallback_scope, effect="contacts come masked and are dropped",
                                fix="set MESSAGING_IDENTITY_SCOPE to the scopes the client is registered for")
                    response = self._request(self.fallback_scope)
                response.raise_for_status()
                body = response.json()
                self._token = (body["access_token"], time.time() + float(body.get("expires_in", 300)))
            return self._token[0]


def _invalid_scope(response: requests.Response) -> bool:
    if response.status_code != 400:
        return False
    try:
        return response.json().get("error") == "invalid_scope"
    except (ValueError, AttributeError):
        return False


def _client_secret(config: Mapping[str, Any], client_id: str) -> Callable[[], str | None]:
    def read() -> str | None:
        if config.get("MESSAGING_IDENTITY_CLIENT_SECRET"):
            return str(config["MESSAGING_IDENTITY_CLIENT_SECRET"])
        try:  # embedded: the demo secret identity's seed wrote
            return json.loads((Path(config["VAR_DIR"]) / "clients.json").read_text())[client_id]["client_secret"]
        except (OSError, ValueError, KeyError):
            return None

    return read


def directory(config: Mapping[str, Any]) -> Directory:
    if config["MESSAGING_DIRECTORY"] == "memory":
        return MemoryDirectory()
    identity = config["SERVICE_URLS"]["identity"]
    client_id = str(config["MESSAGING_IDENTITY_CLIENT_ID"])
    tokens = ClientCredentials(f"{identity}/oauth/token", client_id, _client_secret(config, client_id),
                               str(config["MESSAGING_IDENTITY_SCOPE"]), timeout=float(config["HTTP_TIMEOUT"]),
                               fallback_scope=BASE_SCOPE)
    return IdentityDirectory(ServiceClient(identity, timeout=float(config["HTTP_TIMEOUT"]), token_provider=tokens),
                             concurrency=int(config["MESSAGING_DIRECTORY_CONCURRENCY"]),
                             batch_size=int(config["MESSAGING_DIRECTORY_BATCH"]))
