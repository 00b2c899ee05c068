"""Who may sign with a seal: grants to OAuth clients (services) and subjects (staff), and the caller.

Flask-free; the use cases commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, defer

from common.errors import Forbidden, NotFound, ValidationFailed
from seal.models import GRANT_CLIENT, GRANT_SUBJECT, Grant, Seal
from seal.seals import get_seal, record_event


class NotGranted(Forbidden):
    code, title = "seal_not_granted", "This seal is not granted to the caller"


@dataclass(frozen=True)
class Actor:
    """Who is calling, from the verified access token."""

    sub: str
    client_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)


def add_grant(session: Session, seal_id: str, grantee_type: str, grantee: str, *, actor: str | None) -> Grant:
    """Idempotent: granting twice returns the first grant. :raise ValidationFailed: :raise SealNotFound:"""
    if grantee_type not in (GRANT_CLIENT, GRANT_SUBJECT):
        raise ValidationFailed("grantee_type is client or subject", code="invalid_grantee_type")
    grantee = (grantee or "").strip()
    if not grantee or len(grantee) > 255:
        raise ValidationFailed("grantee is 1–255 characters", code="invalid_grantee")
    seal = get_seal(session, seal_id)
    existing = session.scalars(select(Grant).where(Grant.seal_id == seal.id, Grant.grantee_type == grantee_type,
                                                   Grant.grantee == grantee)).first()
    if existing is not None:
        return existing
    grant = Grant(seal_id=seal.id, grantee_type=grantee_type, grantee=grantee, granted_by=actor)
    session.add(grant)
    record_event(session, seal, "grant_added", actor=actor, reason=f"{grantee_type}:{grantee}")
    session.commit()
    return grant


def remove_grant(session: Session, seal_id: str, grant_id: int, *, actor: str | None) -> None:
    """:raise NotFound: no such grant on that seal."""
    grant = session.get(Grant, grant_id)
    if grant is None or grant.seal_id != seal_id:
        raise NotFound(f"no grant {grant_id} on seal {seal_id}", code="grant_not_found")
    seal = get_seal(session, seal_id)
    session.delete(grant)
    record_event(session, seal, "grant_removed", actor=actor, reason=f"{grant.grantee_type}:{grant.grantee}")
    session.commit()


def list_grants(session: Session, seal_id: str) -> list[Grant]:
    return list(session.scalars(select(Grant).where(Grant.seal_id == seal_id).order_by(Grant.id)))


def granted_to(sub, client_id):
    """The grant rows that let ``sub`` signing through ``client_id`` use a seal: a subject grant
    for that person (whatever the client) or a client grant for that client. Values or bind
    parameters; a missing client (None) matches no client grant, grantees being non-empty."""
    return or_(and_(Grant.grantee_type == GRANT_SUBJECT, Grant.grantee == sub),
               and_(Grant.grantee_type == GRANT_CLIENT, Grant.grantee == client_id))


def granted_seals(session: Session, actor: Actor) -> list[Seal]:
    """Seals the caller may sign with (granted to its client or to its subject)."""
    ids = select(Grant.seal_id).where(granted_to(actor.sub, actor.client_id))
    return list(session.scalars(select(Seal).options(defer(Seal.image_png), defer(Seal.eseal_der))
                                .where(Seal.id.in_(ids)).order_by(Seal.created_at)))
