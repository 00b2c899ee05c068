"""Holders authorising a use of a licence (授权用证), and what they can see of their licences.

An authorisation names the licence, the face fields the verifier may see, the purpose
(用证事由), the audience (the verifying organisation's credit code, or a verifying client
id), a lifetime (minutes to days) and a number of uses. It yields a short code (typed at a
window or carried in a QR code) that the holder can revoke at any time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import NotFound, Problem, ValidationFailed

from . import catalogue
from .holders import Holder, holder_index
from .issuing import Deps, holder_code_of
from .lifecycle import LicenceNotFound
from .models import PENDING, VALID, Authorisation, Licence, LicenceType, UseRecord

# Crockford-style alphabet without 0/O, 1/I/L, U: easy to read aloud and type. 10 symbols = 50 bits.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10


class AuthorisationNotFound(NotFound):
    code, title = "authorisation_not_found", "No such authorisation"


class LicenceNotUsable(Problem):
    status, code, title = 409, "licence_not_usable", "The licence cannot be authorised for use in its state"


@dataclass(frozen=True)
class Limits:
    min_minutes: int
    max_minutes: int
    max_uses: int


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str:
    """What a person typed, as stored: upper case, without spaces or dashes."""
    upper = raw.upper()
    if upper.isalnum():  # typed as stored (what a window's scanner sends): 0.4 µs instead of 2.7
        return upper[:64]
    return "".join(ch for ch in upper if ch.isalnum())[:64]


def holder_indexes(deps: Deps, holder: Holder) -> list[str]:
    return [holder_index(deps.cipher, kind, code) for kind, code in holder.codes()]


def holders_licences(session: Session, deps: Deps, holder: Holder) -> list[Licence]:
    """Every visible licence of the person and the organisations they act for, newest first."""
    indexes = holder_indexes(deps, holder)
    if not indexes:
        return []
    return list(session.scalars(select(Licence).where(Licence.holder_index.in_(indexes), Licence.status != PENDING)
                                .order_by(Licence.created_at.desc())))


def holders_licence(session: Session, deps: Deps, holder: Holder, licence_id: str) -> Licence:
    """:raise LicenceNotFound: also for someone else's licence (no oracle of what exists)."""
    row = session.get(Licence, licence_id)
    if row is None or row.status == PENDING or row.holder_index not in holder_indexes(deps, holder):
        raise LicenceNotFound(f"no licence {licence_id} of yours")
    return row


def usable(row: Licence) -> bool:
    """Whether the licence may be authorised for use now (:func:`create` refuses it otherwise)."""
    return row.status == VALID


def own_holder(deps: Deps, row: Licence) -> dict[str, str]:
    """The licence's holder as its holder sees it: name and code unmasked. Masking
    (:func:`licenses.verification.licence_summary`) is for everyone else; this is only for a
    licence :func:`holders_licence` found to be the person's or their organisation's."""
    return {"kind": row.holder_kind, "name": row.holder_name, "code": holder_code_of(deps, row)}


def create(session: Session, deps: Deps, holder: Holder, licence_id: str, *, fields: list[str], purpose: str,
           audience: str, minutes: int, max_uses: int, limits: Limits) -> Authorisation:
    """:raise LicenceNotFound: :raise LicenceNotUsable: :raise ValidationFailed:"""
    row = holders_licence(session, deps, holder, licence_id)
    if not usable(row):
        raise LicenceNotUsable(f"a {row.status} licence cannot be authorised for use")
    names = {spec.name for spec in catalogue.field_specs(session.get(LicenceType, row.type_code))}
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(fields) - names)
    if not fields or unknown:
        errors["fields"] = [f"not fields of this licence: {', '.join(unknown)}" if unknown else "name at least one"]
    if not limits.min_minutes <= minutes <= limits.max_minutes:
        errors["minutes"] = [f"between {limits.min_minutes} and {limits.max_minutes}"]
    if not 1 <= max_uses <= limits.max_uses:
        errors["max_uses"] = [f"between 1 and {limits.max_uses}"]
    if not 1 <= len(purpose.strip()) <= 255:
        errors["purpose"] = ["1..255 characters"]
    if not 1 <= len(audience.strip()) <= 255:
        errors["audience"] = ["the verifying organisation's credit code or client id"]
    if errors:
        raise ValidationFailed("the authorisation is invalid", code="invalid_authorisation", errors=errors)
    auth = Authorisation(code=new_code(), licence_id=row.id, granted_by=holder.sub, granted_by_name=holder.name,
                         fields=sorted(set(fields)),
                         purpose=purpose.strip(), audience=audience.strip().upper() if len(audience.strip()) == 18
                         else audience.strip(), expires_at=utcnow() + timedelta(minutes=minutes), max_uses=max_uses)
    session.add(auth)
    session.commit()
    return auth


def list_for(session: Session, licence_id: str) -> list[Authorisation]:
    return list(session.scalars(select(Authorisation).where(Authorisation.licence_id == licence_id)
                                .order_by(Authorisation.created_at.desc())))


def state_of(auth: Authorisation, now: datetime) -> str:
    """``active``, ``revoked``, ``expired`` or ``used_up``: what the holder's pages show, and
    what online verification refuses (:func:`licenses.verification._decide`), in this order."""
    if auth.status != "active":
        return "revoked"
    if auth.expires_at <= now:
        return "expired"
    if auth.uses >= auth.max_uses:
        return "used_up"
    return "active"


def get_own(session: Session, deps: Deps, holder: Holder, authorisation_id: str) -> Authorisation:
    """:raise AuthorisationNotFound: also for another holder's."""
    auth = session.get(Authorisation, authorisation_id)
    if auth is None:
        raise AuthorisationNotFound(f"no authorisation {authorisation_id}")
    try:
        holders_licence(session, deps, holder, auth.licence_id)
    except LicenceNotFound:
        raise AuthorisationNotFound(f"no authorisation {authorisation_id} of yours") from None
    return auth


def revoke(session: Session, deps: Deps, holder: Holder, authorisation_id: str) -> Authorisation:
    """Idempotent: revoking a revoked authorisation changes nothing (who revoked it first stays).

    Anyone who may act for the licence's holder may revoke, not only who granted it: an
    organisation acts through any of its agents, and one must be able to stop a colleague's
    grant (when the colleague leaves). Who did is recorded beside who granted.

    :raise AuthorisationNotFound: also for another holder's.
    """
    auth = get_own(session, deps, holder, authorisation_id)
    if auth.status != "revoked":
        # Only while still active: of two agents revoking at once, the first is recorded.
        session.execute(update(Authorisation).where(Authorisation.id == auth.id, Authorisation.status != "revoked")
                        .values(status="revoked", revoked_at=utcnow(), revoked_by=holder.sub,
                                revoked_by_name=holder.name))
        session.commit()
        session.refresh(auth)
    return auth


def use_records(session: Session, licence_id: str) -> list[UseRecord]:
    return list(session.scalars(select(UseRecord).where(UseRecord.licence_id == licence_id)
                                .order_by(UseRecord.at.desc(), UseRecord.id.desc())))
