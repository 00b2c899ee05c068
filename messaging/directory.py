"""Who a person is reachable as: the hub asks identity for a subject's contact channels.

Two implementations of one seam: :class:`IdentityDirectory` calls identity's admin API
(``GET /api/v1/people/<sub>``, a client-credentials token with ``identity:people:read`` and
``phone:full``, so the mobile number comes unmasked); :class:`MemoryDirectory` holds contacts
given to it (tests, benchmarks).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import requests

from common.errors import ServiceUnavailable
from common.http import ServiceClient


@dataclass(frozen=True)
class Contact:
    subject: str
    name: str | None = None
    mobile: str | None = None
    email: str | None = None


class Directory(Protocol):
    def lookup(self, subjects: list[str]) -> dict[str, Contact]:
        """Contacts of the subjects that exist (unknown subjects are absent).

        :raise ServiceUnavailable: the directory cannot answer now.
        """


class MemoryDirectory:
    def __init__(self, contacts: list[Contact] | None = None) -> None:
        self.contacts = {c.subject: c for c in contacts or []}

    def add(self, contact: Contact) -> None:
        self.contacts[contact.subject] = contact

    def lookup(self, subjects: list[str]) -> dict[str, Contact]:
        return {s: self.contacts[s] for s in subjects if s in self.contacts}


class IdentityDirectory:
    """Identity's people API, with a short cache (a bulk send names the same people often).

    Identity answers one person per request, so a bulk send of 1,000 people is 1,000 requests;
    ``concurrency`` of them are in flight at once (identity serves several at a time: 2 workers
    × 4 threads in ``xsn run``), which took the demo's 1,000-recipient send from ~8 s to ~2 s.
    """

    def __init__(self, client: ServiceClient, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, concurrency: int = 8) -> None:
        self.client, self.ttl, self.clock, self.concurrency = client, ttl, clock, max(1, concurrency)
        self._cache: dict[str, tuple[float, Contact | None]] = {}
        self._lock = threading.Lock()

    def _fetch(self, subject: str) -> Contact | None:
        try:
            response = self.client.get(f"/api/v1/people/{requests.utils.quote(subject, safe='')}")
        except requests.RequestException as exc:
            raise ServiceUnavailable("the identity directory cannot be reached", code="directory_unavailable") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceUnavailable(f"the identity directory answered {response.status_code}",
                                     code="directory_unavailable")
        body = response.json()
        mobile = body.get("mobile")
        if mobile and "*" in mobile:  # masked: the token lacked phone:full; SMS cannot reach it
            mobile = None
        return Contact(subject=subject, name=body.get("name"), mobile=mobile, email=body.get("email"))

    def lookup(self, subjects: list[str]) -> dict[str, Contact]:
        now = self.clock()
        unique = list(dict.fromkeys(subjects))
        with self._lock:
            known = {s: self._cache[s] for s in unique if s in self._cache and now - self._cache[s][0] <= self.ttl}
        missing = [s for s in unique if s not in known]
        fetched = self._fetch_all(missing) if len(missing) > 1 and self.concurrency > 1 \
            else [self._fetch(s) for s in missing]
        with self._lock:
            for subject, contact in zip(missing, fetched, strict=True):
                self._cache[subject] = known[subject] = (now, contact)
        return {s: known[s][1] for s in unique if known[s][1] is not None}

    def _fetch_all(self, subjects: list[str]) -> list[Contact | None]:
        """:raise ServiceUnavailable: on the first failure; lookups not started yet are cancelled."""
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(subjects)), thread_name_prefix="directory")
        try:
            # Each lookup runs in a copy of the caller's context, so the request id goes along.
            futures = [pool.submit(contextvars.copy_context().run, self._fetch, s) for s in subjects]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
