"""The hub's parts built from configuration: directory, channels, dispatcher, limits.

Everything here reads a config mapping (a Flask app's ``config`` or the worker's copy of it);
the domain modules get the built parts as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.config import local_secret
from common.errors import ServiceUnavailable
from common.http import ServiceClient
from common.peers.credentials import ClientCredentials, client_secret_source
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
IDENTITY_AUDIENCE = "xsn:identity"  # the audience identity's people API accepts (its OAUTH_AUDIENCE)


def directory_unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(detail, code="directory_unavailable")


def directory(config: Mapping[str, Any]) -> Directory:
    if config["MESSAGING_DIRECTORY"] == "memory":
        return MemoryDirectory()
    identity = config["SERVICE_URLS"]["identity"]
    client_id = str(config["MESSAGING_IDENTITY_CLIENT_ID"])
    # Production without MESSAGING_IDENTITY_CLIENT_SECRET has no secret: lookups fail closed (503).
    credentials = ClientCredentials(f"{identity}/oauth/token", client_id,
                                    client_secret_source(config, client_id, "MESSAGING_IDENTITY_CLIENT_SECRET"),
                                    timeout=float(config["HTTP_TIMEOUT"]))
    # A scope identity refuses (a client registered without email:full, say) falls back to the
    # base scope with a warning: contacts come masked and are dropped, in-app messages still go.
    tokens = credentials.provider(IDENTITY_AUDIENCE, str(config["MESSAGING_IDENTITY_SCOPE"]),
                                  unavailable=directory_unavailable, fallback_scope=BASE_SCOPE)
    return IdentityDirectory(ServiceClient(identity, timeout=float(config["HTTP_TIMEOUT"]), token_provider=tokens),
                             concurrency=int(config["MESSAGING_DIRECTORY_CONCURRENCY"]),
                             batch_size=int(config["MESSAGING_DIRECTORY_BATCH"]))
