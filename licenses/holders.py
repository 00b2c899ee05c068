"""Holders: who a logged-in person is to this node, and how holder codes are kept.

Identity's access tokens carry ``sub`` but no ID number (personal data stays out of tokens).
The holder's API therefore resolves the person through a :class:`HolderDirectory`:
:class:`IdentityHolderDirectory` asks identity's ``/oauth/userinfo`` with the person's own
access token, which must carry ``openid idcard:full org`` (the person consents to this node
reading their ID number and organisations) and the audiences ``xsn:licenses`` and
``xsn:identity``. A person holds the licences issued to their ID number, and those of the
organisations where they are the legal representative or an agent (the ``org`` claim's
``role``); an organisation's licences are authorised for use through those people.
:class:`MemoryHolderDirectory` is the same seam for tests.

Holder codes are stored encrypted with a blind index (:class:`common.crypto.pii.PiiCipher`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import requests

from common.crypto.pii import PiiCipher, mask_code
from common.errors import Forbidden, ServiceUnavailable
from common.http import ServiceClient
from common.ttl_cache import TtlCache
from common.values.codes import CitizenId, CreditCode, InvalidCode

from .models import ORGANISATION, PERSON

ORG_ROLES = frozenset({"legal_representative", "agent"})
HOLDER_FIELD = "holder_code"


class NotAHolder(Forbidden):
    code, title = "not_a_holder", "The token does not identify a licence holder"


class DirectoryUnavailable(ServiceUnavailable):
    code, title = "identity_unavailable", "The identity node is unavailable"


@dataclass(frozen=True)
class Holder:
    """A person as a holder: their ID number and the organisations they act for."""

    sub: str
    id_number: str | None
    organisations: tuple[str, ...] = field(default=())
    name: str | None = None  # userinfo's ``name`` (scope ``profile``): who granted or revoked, as pages show

    def codes(self) -> list[tuple[str, str]]:
        """``(holder kind, code)`` of everything this person may hold or act for."""
        codes = [(PERSON, self.id_number)] if self.id_number else []
        return codes + [(ORGANISATION, code) for code in self.organisations]


class HolderDirectory(Protocol):
    def resolve(self, sub: str, bearer_token: str) -> Holder:
        """:raise NotAHolder: :raise DirectoryUnavailable:"""


class MemoryHolderDirectory:
    def __init__(self, holders: dict[str, Holder] | None = None) -> None:
        self.holders = dict(holders or {})

    def resolve(self, sub: str, bearer_token: str) -> Holder:
        holder = self.holders.get(sub)
        if holder is None:
            raise NotAHolder("unknown person")
        return holder


class IdentityHolderDirectory:
    """Asks identity's userinfo; answers are cached briefly per token (one page view = several calls)."""

    def __init__(self, client: ServiceClient, *, ttl: float = 60.0) -> None:
        self.client = client
        self._cache: TtlCache[str, Holder] = TtlCache(ttl, 10_000)

    def resolve(self, sub: str, bearer_token: str) -> Holder:
        cached = self._cache.get(bearer_token)
        if cached is not None:
            return cached
        try:
            response = self.client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {bearer_token}"})
        except requests.RequestException as exc:
            raise DirectoryUnavailable(f"identity did not answer: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise NotAHolder("identity does not release this person's ID number to this token "
                             "(it needs the scopes openid idcard:full org and the audience xsn:identity)")
        if response.status_code != 200:
            raise DirectoryUnavailable(f"identity answered {response.status_code}")
        holder = holder_from_userinfo(sub, response.json())
        self._cache.put(bearer_token, holder)
        return holder


def holder_from_userinfo(sub: str, claims: dict) -> Holder:
    """:raise NotAHolder: a different subject, or no usable ID number."""
    if claims.get("sub") != sub:
        raise NotAHolder("userinfo answered for another subject")
    try:
        id_number = CitizenId.parse(str(claims.get("id_number", ""))).value
    except InvalidCode:
        raise NotAHolder("identity released no full ID number (scope idcard:full)") from None
    orgs = []
    for org in claims.get("organisations") or []:
        if isinstance(org, dict) and org.get("role") in ORG_ROLES and CreditCode.is_valid(str(org.get("credit_code"))):
            orgs.append(CreditCode.parse(org["credit_code"]).value)
    name = claims.get("name")
    name = name.strip()[:255] if isinstance(name, str) else ""
    return Holder(sub=sub, id_number=id_number, organisations=tuple(orgs), name=name or None)


def parse_holder_code(kind: str, raw: object) -> str:
    """The canonical ID number (person) or credit code (organisation). :raise InvalidCode:"""
    if not isinstance(raw, str):
        raise InvalidCode("invalid_holder_code", "the holder code must be a string")
    return (CitizenId if kind == PERSON else CreditCode).parse(raw).value


def holder_index(cipher: PiiCipher, kind: str, code: str) -> str:
    return cipher.index(HOLDER_FIELD, f"{kind}:{code}")


def protect_code(cipher: PiiCipher, kind: str, code: str) -> tuple[str, str, str]:
    """``(blind index, ciphertext, masked)`` of a holder code."""
    return holder_index(cipher, kind, code), cipher.encrypt(HOLDER_FIELD, code), mask_code(code)
