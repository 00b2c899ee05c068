"""Revoked tokens and sessions from identity (BRIEF contract 2), so the gateway refuses them
within seconds rather than at their expiry.

``RevocationFeed.poll_forever`` asks identity's ``GET /oauth/revocations?after=<cursor>``
every ``interval`` seconds (1 s embedded) with a client-credentials token of its own client
(``xsn-gateway``, scope ``tokens:revocations``). In production, ``subscribe_forever`` also
listens on Redis channel ``xsn:revocations``, where identity publishes each item as it
happens; polling stays on (less often) to catch what a dropped subscription missed.

If identity cannot be reached the gateway keeps serving with what it knows (signatures and
expiry are still checked); ``/readyz`` shows how old the list is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import structlog

from gateway.edge.tokens import RevocationList

log = structlog.get_logger("xsn.gateway.revocations")
CHANNEL = "xsn:revocations"
SCOPE = "tokens:revocations"
TOKEN_BACKOFF_MIN_S, TOKEN_BACKOFF_MAX_S = 5.0, 60.0


class RevocationFeed:
    def __init__(self, revocations: RevocationList, *, identity_url: str, client_id: str, client_secret: str | None,
                 session: aiohttp.ClientSession, interval: float = 1.0) -> None:
        self.revocations = revocations
        self.identity_url = identity_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.session = session
        self.interval = interval
        self.cursor = ""
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_retry_at = 0.0
        self._token_backoff = 0.0
        self._last_warning = 0.0

    async def _access_token(self) -> str:
        """A client-credentials token, asked for again only after a growing pause once refused:
        identity counts failed token requests per address, and every gateway request shares ours.

        :raise RuntimeError: no secret, refused, or still waiting after a refusal.
        """
        if self._token and time.monotonic() < self._token_expires - 30:
            return self._token
        if not self.client_secret:
            raise RuntimeError(f"no client secret for {self.client_id} (XSN_GATEWAY_CLIENT_SECRET)")
        if time.monotonic() < self._token_retry_at:
            raise RuntimeError("waiting before asking identity for a token again")
        try:
            return await self._fetch_token()
        except Exception:
            self._token_backoff = min(TOKEN_BACKOFF_MAX_S, self._token_backoff * 2 or TOKEN_BACKOFF_MIN_S)
            self._token_retry_at = time.monotonic() + self._token_backoff
            raise

    async def _fetch_token(self) -> str:
        # RFC 6749 §2.3.1: id and secret form-encoded, then HTTP Basic.
        basic = base64.b64encode(f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}".encode()).decode()
        async with self.session.post(f"{self.identity_url}/oauth/token", headers={"Authorization": f"Basic {basic}"},
                                     data={"grant_type": "client_credentials", "scope": SCOPE},
                                     timeout=aiohttp.ClientTimeout(total=5)) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                raise RuntimeError(f"token endpoint answered {response.status}: {str(body)[:200]}")
        self._token = body["access_token"]
        self._token_expires = time.monotonic() + float(body.get("expires_in", 300))
        self._token_backoff = 0.0
        return self._token

    async def poll_once(self) -> int:
        """Fetch what was revoked after our cursor; the number of items.

        :raise Exception: identity unreachable or refusing (the caller logs and retries).
        """
        token = await self._access_token()
        async with self.session.get(f"{self.identity_url}/oauth/revocations", params={"after": self.cursor},
                                    headers={"Authorization": f"Bearer {token}"},
                                    timeout=aiohttp.ClientTimeout(total=5)) as response:
            if response.status == 401:
                self._token = None  # expired or rotated keys: get a new one next time
            if response.status != 200:
                raise RuntimeError(f"revocation feed answered {response.status}")
            body = await response.json(content_type=None)
        self.apply(body)
        return len(body.get("tokens") or ()) + len(body.get("sessions") or ())

    def apply(self, body: dict[str, Any]) -> None:
        for item in body.get("tokens") or ():
            self.revocations.add(item, "token")
        for item in body.get("sessions") or ():
            self.revocations.add(item, "session")
        if isinstance(body.get("cursor"), str):
            self.cursor = body["cursor"]
        self.revocations.updated_at = time.time()

    async def poll_forever(self) -> None:
        while True:
            try:
                await self.poll_once()
                self.revocations.prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep polling: identity may be restarting
                now = time.monotonic()
                if now - self._last_warning > 30:
                    self._last_warning = now
                    log.warning("revocation_poll_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.interval)


async def subscribe_forever(revocations: RevocationList, redis_url: str) -> None:
    """Apply items identity publishes on Redis; reconnect after errors."""
    import redis.asyncio as redis

    while True:
        client = redis.from_url(redis_url)
        try:
            pubsub = client.pubsub()
            await pubsub.subscribe(CHANNEL)
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    item = json.loads(message["data"])
                except (ValueError, TypeError):
                    continue
                if isinstance(item, dict):
                    revocations.add(item)
                    revocations.updated_at = time.time()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("revocation_subscription_failed", error_type=type(exc).__name__)
            await asyncio.sleep(1.0)
        finally:
            await client.aclose()
