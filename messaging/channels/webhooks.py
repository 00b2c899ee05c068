"""Webhooks per Standard Webhooks: signing, secrets and rotation, endpoint URLs, sending.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``; the
secret is ``whsec_<base64 bytes>``. After a rotation the previous secret also signs for a
grace period (the header carries both signatures, space separated), so a receiver can switch
its secret at any time within it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import NotFound, ValidationFailed
from messaging.models import WebhookEndpoint

EVENT_TYPES = ("message.completed", "message.failed", "*")
ROTATION_GRACE = timedelta(hours=24)
MAX_URL = 2048


class InvalidWebhookUrl(ValidationFailed):
    code, title = "invalid_webhook_url", "The webhook URL is not acceptable"


class EndpointNotFound(NotFound):
    code, title = "webhook_endpoint_not_found", "No such webhook endpoint"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(endpoint: WebhookEndpoint, msg_id: str, timestamp: int, body: bytes, now: datetime) -> str:
    signatures = [sign(endpoint.secret, msg_id, timestamp, body)]
    if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        signatures.append(sign(endpoint.previous_secret, msg_id, timestamp, body))
    return " ".join(signatures)


def check_url(url: str, *, allow_private: bool,
              resolve: Callable[[str], list[str]] | None = None) -> str:
    """The URL if acceptable: http(s), a host, and (unless ``allow_private``) https with every
    address it resolves to public — no loopback, private, link-local or reserved addresses.

    :raise InvalidWebhookUrl:
    """
    if not isinstance(url, str) or len(url) > MAX_URL or any(ord(c) < 0x21 for c in url):
        raise InvalidWebhookUrl("the URL is missing, too long or has spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise InvalidWebhookUrl("an http(s) URL with a host and no credentials is needed")
    if allow_private:
        return url
    if parts.scheme != "https":
        raise InvalidWebhookUrl("webhook URLs must use https")
    try:
        addresses = (resolve or _resolve)(parts.hostname)
    except OSError as exc:
        raise InvalidWebhookUrl(f"the host {parts.hostname} does not resolve") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            raise InvalidWebhookUrl(f"the host {parts.hostname} resolves to a non-public address ({ip})")
    return url


def _resolve(host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})


# -- endpoints --------------------------------------------------------------------------------------
def create_endpoint(session: Session, app: str, url: str, event_types: list[str], *, allow_private: bool,
                    resolve: Callable[[str], list[str]] | None = None) -> WebhookEndpoint:
    """(commit) :raise InvalidWebhookUrl: :raise ValidationFailed: unknown event types."""
    check_url(url, allow_private=allow_private, resolve=resolve)
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown or not event_types:
        raise ValidationFailed("unknown event types", code="invalid_event_types", errors={"event_types": unknown})
    endpoint = WebhookEndpoint(id=f"ep_{uuid.uuid4().hex}", app=app, url=url, event_types=sorted(set(event_types)),
                               secret=new_secret())
    session.add(endpoint)
    session.commit()
    return endpoint


def get_endpoint(session: Session, app: str, endpoint_id: str) -> WebhookEndpoint:
    """:raise EndpointNotFound:"""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.app != app:
        raise EndpointNotFound()
    return endpoint


def list_endpoints(session: Session, app: str) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.app == app)
                                .order_by(WebhookEndpoint.created_at)))


def rotate_secret(session: Session, endpoint: WebhookEndpoint, *, now: datetime | None = None) -> WebhookEndpoint:
    """New secret; the old one keeps signing for :data:`ROTATION_GRACE` (commit)."""
    now = now or utcnow()
    endpoint.previous_secret, endpoint.previous_secret_until = endpoint.secret, now + ROTATION_GRACE
    endpoint.secret = new_secret()
    session.commit()
    return endpoint


def enable(session: Session, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.enabled, endpoint.disabled_reason, endpoint.failure_streak = True, None, 0
    session.commit()
    return endpoint


# -- sending ----------------------------------------------------------------------------------------
class WebhookSender:
    """POSTs signed events; one keep-alive session per worker process."""

    def __init__(self, *, timeout: float = 10.0, allow_private: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.timeout, self.allow_private, self.clock = timeout, allow_private, clock
        self.http = requests.Session()

    def post(self, endpoint: WebhookEndpoint, msg_id: str, body: bytes, now: datetime) -> tuple[int | None, str]:
        """``(status, error)``; status None when no answer came (network, refused URL)."""
        try:
            check_url(endpoint.url, allow_private=self.allow_private)  # again: DNS may have changed
        except InvalidWebhookUrl as exc:
            return None, exc.detail
        timestamp = int(self.clock())
        headers = {"content-type": "application/json", "webhook-id": msg_id,
                   "webhook-timestamp": str(timestamp),
                   "webhook-signature": signature_header(endpoint, msg_id, timestamp, body, now),
                   "user-agent": "xsn-messaging-webhooks/1"}
        try:
            response = self.http.post(endpoint.url, data=body, headers=headers, timeout=self.timeout,
                                      allow_redirects=False)
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}"[:255]
        return response.status_code, "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
