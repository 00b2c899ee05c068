"""Real-name verification (实名核验): the ``RealNameVerifier`` seam and its two implementations.

* :class:`EmbeddedRegister` — a local population register seeded with demo people, with a
  simulated face-check (活体/人像比对) result per person; used by ``make run`` and tests.
* :class:`HttpPopulationRegister` — the production adapter to a population-register
  verification service over HTTPS.

Policy: fail closed. A verifier that cannot give a definite answer (timeout, HTTP error,
malformed reply) raises :class:`RealNameUnavailable` and the person's level is not raised.
A definite "no match" raises :class:`RealNameMismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import requests
import structlog
from sqlalchemy.orm import Session

from common.errors import Problem, ServiceUnavailable
from common.http import ServiceClient
from common.values.codes import CitizenId, InvalidCode
from identity import accounts
from identity.models import Person

logger = structlog.get_logger("xsn.identity.realname")
VERIFICATIONS_PATH = "/v1/verifications"


@dataclass(frozen=True)
class RealNameResult:
    matched: bool  # name + ID number found together in the register (L2)
    real_person: bool = False  # face check passed against the register photo (L3)
    reference: str | None = None  # the register's transaction reference, for the audit trail

    @property
    def level(self) -> int:
        if not self.matched:
            return 1
        return 3 if self.real_person else 2


class RealNameVerifier(Protocol):
    name: str

    def verify(self, name: str, id_number: str) -> RealNameResult:
        """:raise RealNameUnavailable: no definite answer could be obtained."""


class RealNameUnavailable(ServiceUnavailable):
    code, title = "realname_unavailable", "The population register cannot be reached"


class RealNameMismatch(Problem):
    status, code, title = 422, "realname_mismatch", "Name and ID number do not match the population register"


# --- embedded register -------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterEntry:
    name: str
    id_number: str
    face_verified: bool = False


class EmbeddedRegister:
    """A local stand-in for the population register, keyed by ID number."""

    name = "embedded"

    def __init__(self, entries: list[RegisterEntry] | None = None) -> None:
        self.entries = {e.id_number: e for e in (entries if entries is not None else demo_register())}

    def verify(self, name: str, id_number: str) -> RealNameResult:
        entry = self.entries.get(id_number)
        if entry is None or entry.name != name:
            return RealNameResult(matched=False, reference=None)
        return RealNameResult(matched=True, real_person=entry.face_verified,
                              reference=f"embedded:{id_number[-4:]}")


def demo_register() -> list[RegisterEntry]:
    """Every demo person (seed.DEMO_PEOPLE) plus residents who have not registered yet."""
    from identity.seed import DEMO_PEOPLE, DEMO_RESIDENTS

    return [RegisterEntry(p["name"], p["id_number"], p.get("face_verified", False))
            for p in (*DEMO_PEOPLE, *DEMO_RESIDENTS)]


# --- production adapter ------------------------------------------------------------------------


class HttpPopulationRegister:
    """``POST {url}/v1/verifications`` with ``{"name", "id_number", "face_check"}``.

    Expected reply (200): ``{"match": bool, "face_verified": bool, "reference": str}``.
    Anything else — connection error, timeout, non-200, non-JSON, missing or non-boolean
    ``match`` — is no answer, and raises :class:`RealNameUnavailable` (fail closed).
    """

    name = "http"

    def __init__(self, url: str, *, api_key: str | None, timeout: float = 3.0) -> None:
        if not url:
            raise ValueError("REALNAME_URL is required for the http verifier")
        self.api_key = api_key
        self.timeout = timeout
        # Not retried (POST): the register may bill or rate-limit per query; the person can retry.
        self.client = ServiceClient(url, timeout=timeout)
        self.url = f"{self.client.base_url}{VERIFICATIONS_PATH}"

    def verify(self, name: str, id_number: str) -> RealNameResult:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            response = self.client.post(VERIFICATIONS_PATH, headers=headers, allow_redirects=False,
                                        json={"name": name, "id_number": id_number, "face_check": True})
        except requests.RequestException as exc:
            logger.warning("realname_unreachable", error=type(exc).__name__)
            raise RealNameUnavailable() from None
        if response.status_code != 200:
            logger.warning("realname_bad_status", status=response.status_code)
            raise RealNameUnavailable()
        try:
            body: Any = response.json()
        except ValueError:
            raise RealNameUnavailable("The population register sent a malformed reply") from None
        if not isinstance(body, dict) or not isinstance(body.get("match"), bool):
            raise RealNameUnavailable("The population register sent a malformed reply")
        face = body.get("face_verified", False)
        reference = body.get("reference")
        return RealNameResult(matched=body["match"], real_person=body["match"] and face is True,
                              reference=str(reference)[:64] if reference is not None else None)


def make_verifier(config: dict[str, Any]) -> RealNameVerifier:
    """:raise ValueError: unknown ``REALNAME_VERIFIER`` or missing URL."""
    kind = config.get("REALNAME_VERIFIER", "embedded")
    if kind == "embedded":
        return EmbeddedRegister()
    if kind == "http":
        return HttpPopulationRegister(config.get("REALNAME_URL") or "", api_key=config.get("REALNAME_API_KEY"),
                                      timeout=float(config.get("REALNAME_TIMEOUT", 3.0)))
    raise ValueError(f"unknown REALNAME_VERIFIER {kind!r}")


# --- the use case ------------------------------------------------------------------------------


def verify_person(session: Session, person: Person, verifier: RealNameVerifier) -> int:
    """Check the person's name + ID number; raise the level to L2 (or L3 with a face match).

    Commits the level change and its record. Returns the new level.
    :raise RealNameMismatch: definite no-match. :raise RealNameUnavailable: no answer.
    """
    id_number = accounts.decrypt_id_number(session, person)
    try:
        CitizenId(id_number)
    except InvalidCode:  # stored data is validated on the way in; this would be corruption
        raise RealNameMismatch() from None
    result = verifier.verify(person.name, id_number)
    if not result.matched:
        logger.info("realname_mismatch", subject=person.id, verifier=verifier.name)
        raise RealNameMismatch()
    method = "realname_face" if result.real_person else "realname_register"
    accounts.raise_assurance_level(session, person, result.level, method=method,
                                   detail=f"{verifier.name}:{result.reference or '-'}")
    session.commit()
    logger.info("realname_verified", subject=person.id, level=person.assurance_level, verifier=verifier.name)
    return person.assurance_level
