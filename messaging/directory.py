"""Who a person is reachable as: the hub asks identity for a subject's contact channels.

Two implementations of one seam: :class:`IdentityDirectory` calls identity's admin API
(``GET /api/v1/people/<sub>``, a client-credentials token with ``identity:people:read`` and
``phone:full``, so the mobile number comes unmasked); :class:`MemoryDirectory` holds contacts
given to it (tests, benchmarks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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
    """Identity's people API, with a short cache (a bulk send names the same people often)."""

    def __init__(self, client: ServiceClient, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.ttl, self.clock = client, ttl, clock
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
        found: dict[str, Contact] = {}
        now = self.clock()
        for subject in dict.fromkeys(subjects):
            with self._lock:
                cached = self._cache.get(subject)
            if cached is None or now - cached[0] > self.ttl:
                cached = (now, self._fetch(subject))
                with self._lock:
                    self._cache[subject] = cached
            if cached[1] is not None:
                found[subject] = cached[1]
        return found
