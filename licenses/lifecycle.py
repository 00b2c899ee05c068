"""A licence's life after issue: amend, suspend, resume, revoke, expire.

Only the issuing department changes a licence. Every change is a :class:`LicenceEvent` with
who (token subject and client), when and why. An amendment is a new licence with the next
identifier version (GB/T 36904 ``version``), sealed like a first issue; only once it is
sealed is the old one marked ``superseded`` (same transaction), so a seal-node failure leaves
the old licence valid. The new one stays pending and invisible if a retry with its
Idempotency-Key can resume it, and is discarded otherwise (it would block every further
amendment until purged). A pending version left by a process killed while sealing is replaced
by the next amendment once that sealing must have ended (:func:`sealing_bound`); a keyed one
whose client never retried is purged once its key's retention is over.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from common.db import begin_write, utcnow
from common.errors import NotFound, Problem, ValidationFailed

from . import issuing, notifier
from .issuers import Issuer
from .issuing import Deps, IssueRequest
from .models import EXPIRED, PENDING, REVOCATION_KINDS, REVOKED, SUPERSEDED, SUSPENDED, VALID, Licence, LicenceEvent

log = structlog.get_logger("xsn.licenses.lifecycle")

# How long a retry with an Idempotency-Key is promised the first request's outcome: the key
# retention of the project's standard (docs STANDARDS.md §7, Stripe's: "kept >= 24 h"). Nothing
# else in the node expires keys; this is what purge_abandoned holds a keyed pending amendment for.
IDEMPOTENCY_KEY_RETENTION = timedelta(hours=24)

# What one sealing (after its pending version is written) may wait for, as sealing_bound counts
# it: two calls of the seal node (the granted seals, usually cached, and the signature), each
# after a client-credentials token (up to two token requests: a refused scope is asked again
# with its fallback, and those are plain requests, never retried), each call sent up to
# 1 + HTTP_RETRIES times (a GET on errors and 502/503/504; a POST on connection errors), with a
# wait before each retry of at most HTTP_RETRY_AFTER_MAX (a Retry-After) or common.http's
# back-off (0.2 s doubling from the second retry). requests' timeout is per step: a request
# waits up to it to connect and up to it again for each read of the answer, so it is two
# timeouts for one read, and no bound at all for a peer that trickles its answer.
# SEALING_BOUND_FLOOR covers that, and the process's own work: never less than five minutes.
SEAL_CALLS, TOKEN_REQUESTS_PER_CALL, BACKOFF_FACTOR, BACKOFF_MAX = 2, 2, 0.2, 120.0
SEALING_BOUND_FLOOR = timedelta(minutes=5)

TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "suspend": ((VALID,), SUSPENDED),
    "resume": ((SUSPENDED,), VALID),
    "revoke": ((VALID, SUSPENDED), REVOKED),
}


class LicenceNotFound(NotFound):
    code, title = "licence_not_found", "No such licence"


class InvalidTransition(Problem):
    status, code, title = 409, "invalid_status_change", "The licence cannot make this change in its state"


def get_licence(session: Session, licence_id: str, *, visible: bool = True, lock: bool = False) -> Licence:
    """By id or identifier; pending licences do not exist for callers. :raise LicenceNotFound:

    ``lock``: read for a change that its status decides, under the write lock
    (:func:`common.db.begin_write`) and the row's lock, as last committed.
    """
    if lock:
        begin_write(session)
    row = session.get(Licence, licence_id, with_for_update=lock, populate_existing=lock)
    if row is None:
        query = select(Licence).where(Licence.identifier == licence_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = session.scalars(query).first()
    if row is None or (visible and row.status == PENDING):
        raise LicenceNotFound(f"no licence {licence_id}")
    return row


def issued_by(session: Session, issuer: Issuer, licence_id: str, *, lock: bool = False) -> Licence:
    """A licence of this department (``lock``: as :func:`get_licence`).

    :raise LicenceNotFound: (also for another department's)
    """
    row = get_licence(session, licence_id, lock=lock)
    if row.issuer_code != issuer.code:
        raise LicenceNotFound(f"no licence {licence_id} of {issuer.code}")
    return row


def _record(session: Session, row: Licence, action: str, to_status: str, *, actor: str,
            client_id: str | None, reason: str | None) -> None:
    session.add(LicenceEvent(licence_id=row.id, action=action, from_status=row.status, to_status=to_status,
                             reason=reason, actor=actor, client_id=client_id))
    row.status, row.status_reason = to_status, reason


def change_status(session: Session, issuer: Issuer, licence_id: str, action: str, *, reason: str | None,
                  kind: str | None = None) -> Licence:
    """Suspend, resume or revoke (注销 ``cancelled`` / 吊销 ``withdrawn``); commits.

    :raise LicenceNotFound: :raise InvalidTransition: :raise ValidationFailed: revocation without reason/kind.
    """
    if action not in TRANSITIONS:
        raise ValidationFailed(f"action is one of {', '.join(TRANSITIONS)}", errors={"action": ["unknown"]})
    # The status decides, so it is read under the lock: two changes at once (a resume and a
    # revocation) would otherwise both pass the check, and a revoked licence could turn valid.
    row = issued_by(session, issuer, licence_id, lock=True)
    allowed, target = TRANSITIONS[action]
    if row.status not in allowed:
        raise InvalidTransition(f"a {row.status} licence cannot {action}")
    if action in ("suspend", "revoke") and not (reason or "").strip():
        raise ValidationFailed(f"{action} needs a reason", code="reason_required", errors={"reason": ["required"]})
    if action == "revoke" and kind not in REVOCATION_KINDS:
        raise ValidationFailed(f"kind is one of {', '.join(REVOCATION_KINDS)}", code="invalid_revocation_kind",
                               errors={"kind": ["cancelled (注销) or withdrawn (吊销)"]})
    text = f"{kind}: {reason.strip()}" if action == "revoke" and reason else (reason or None)
    _record(session, row, action, target, actor=issuer.actor, client_id=issuer.client_id, reason=text)
    if action == "revoke":
        from .models import LicenceType

        licence_type = session.get(LicenceType, row.type_code)
        notifier.enqueue(session, "licence_revoked",
                         {"licence_name": licence_type.name, "face_number": row.face_number, "reason": text},
                         issuing.recipients_for(session, row.holder_index))
    session.commit()
    return row


def amend(session: Session, deps: Deps, issuer: Issuer, licence_id: str, *, fields: dict[str, Any] | None,
          holder_name: str | None, valid_until: date | None, reason: str,
          idempotency_key: str | None = None) -> tuple[Licence, bool]:
    """Issue the next version of a licence and supersede the old one; ``(new licence, replayed)``.

    ``fields`` are merged into the current face (a field set to ``None`` is removed).
    :raise LicenceNotFound: :raise InvalidTransition: also when the licence was revoked or amended
        while the new version was being sealed. :raise Problem: as :func:`issuing.issue`.
    """
    old = issued_by(session, issuer, licence_id)
    if not (reason or "").strip():
        raise ValidationFailed("an amendment needs a reason", code="reason_required", errors={"reason": ["required"]})
    if idempotency_key:
        done = session.scalars(select(Licence).where(
            Licence.previous_id == old.id, Licence.idempotency_key == idempotency_key,
            Licence.idempotency_scope == f"{issuer.code}:{issuer.actor}")).first()
        if done is not None and done.status != PENDING:
            return done, True
    else:
        done = None
    if old.status not in (VALID, SUSPENDED):
        raise InvalidTransition(f"a {old.status} licence cannot be amended")
    face = issuing.face_of(deps, old)
    for name, value in (fields or {}).items():
        if value is None:
            face.pop(name, None)
        else:
            face[name] = value
    req = IssueRequest(type_code=old.type_code, holder_code=issuing.holder_code_of(deps, old),
                       holder_name=holder_name or old.holder_name, fields=face, valid_from=old.valid_from,
                       valid_until=valid_until or old.valid_until)
    checked = issuing.check_request(session, issuer, req)
    licence_type = checked.licence_type
    deps.seal.seal_for(issuer.code, licence_type.seal_kind)
    new, old_id = done, old.id
    if new is None:
        new = issuing.new_pending(session, deps, issuer, checked, idempotency_key=idempotency_key, previous=old)
        try:
            session.commit()
        except IntegrityError:
            # The next version's identifier (or this key) is taken: another amendment of this
            # licence began first; which one supersedes it is decided under the lock below.
            # Unless that one was left by a process killed while sealing it: replaced, under the
            # lock its sealing would need to supersede anything.
            session.rollback()
            old = _replace_stale_pending(session, issuer, old_id, sealing_bound(deps))
            if old is None:
                raise InvalidTransition("another amendment of this licence is under way") from None
            new = issuing.new_pending(session, deps, issuer, checked, idempotency_key=idempotency_key, previous=old)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                raise InvalidTransition("another amendment of this licence is under way") from None
    seal_kind, old_id, new_id = licence_type.seal_kind, old.id, new.id
    document_sm3, identifier, resumable = new.document_sm3, new.identifier, new.idempotency_key is not None
    session.rollback()  # nothing written since the commit: no transaction held across the seal node's call
    try:
        seal = deps.seal.seal_for(issuer.code, seal_kind)
        signature = deps.seal.sign(seal, document_sm3, idempotency_key=f"licence:{new_id}",
                                   property_info=identifier)
    except Exception:
        # A pending version holds the next identifier version, so while it is there every other
        # amendment of the licence is refused (409). One made with an Idempotency-Key is kept:
        # the retry with that key resumes it (the seal node answers a repeated key with the
        # signature it gave, if it gave one) and gets the same licence. One made without a key
        # can never be resumed, so it is discarded now rather than by purge_abandoned a day
        # later; it was never visible, and nothing refers to it.
        if not resumable:
            _discard_pending(session, new_id)
            # A timeout after the seal node signed leaves a signature (in its log, under this
            # property_info) for a version that will never exist: the ids let an auditor match it.
            log.warning("pending_licence_discarded", licence_id=old_id, pending_id=new_id, identifier=identifier)
        raise
    # Decided again under the lock, after the seal node's answer (no lock is held across that
    # call): a revocation or another amendment committed meanwhile stands, and this new version
    # is never sealed (a keyed one stays pending, invisible, and its retry meets the same 409).
    old = issued_by(session, issuer, old_id, lock=True)
    new = session.get(Licence, new_id, with_for_update=True, populate_existing=True)
    if new is None:
        # Replaced by a later amendment (its sealing outlasted sealing_bound), or purged after
        # its key's retention: the signature just made names a version that will never exist.
        session.rollback()
        log.warning("amendment_replaced_while_sealing", licence_id=old_id, pending_id=new_id)
        raise InvalidTransition("a later amendment replaced this one while it was being sealed")
    if new.status != PENDING:  # the same amendment (same key), finished by a concurrent retry
        session.rollback()  # the locks let go now, not when the answer has been rendered
        return new, True
    if old.status not in (VALID, SUSPENDED):
        # Revoked or superseded meanwhile: this version can never be sealed. The locks go at
        # once, and a keyless version, which no retry can resume, is discarded like any other
        # that failed (a keyed one stays: its retry meets the same 409 and learns the outcome).
        session.rollback()
        if not resumable:
            _discard_pending(session, new_id)
            log.warning("pending_licence_discarded", licence_id=old_id, pending_id=new_id, identifier=identifier)
        raise InvalidTransition(f"a {old.status} licence cannot be amended")
    issuing.mark_sealed(session, new, signature, actor=issuer.actor, client_id=issuer.client_id, action="amend")
    if old.status == SUSPENDED:
        # Correcting a suspended licence's face does not lift its suspension: only a resumption
        # does, so the new version is suspended too, for the same reason, recorded as its own step.
        _record(session, new, "suspend", SUSPENDED, actor=issuer.actor, client_id=issuer.client_id,
                reason=old.status_reason)
    _record(session, old, "supersede", SUPERSEDED, actor=issuer.actor, client_id=issuer.client_id,
            reason=f"{reason.strip()} → {new.identifier}")
    session.commit()
    return new, False


def sealing_bound(deps: Deps) -> timedelta:
    """How long one sealing can last at most: a keyless pending version older than this was left
    by a process killed while sealing it (its sealing ended otherwise: in success, or in failure,
    which discards it). Derived from the seal client's timeout and retry settings (see
    :data:`SEAL_CALLS`), and at least :data:`SEALING_BOUND_FLOOR`."""
    retries, timeout = max(0, deps.seal_retries), deps.seal.timeout
    requests_per_call = TOKEN_REQUESTS_PER_CALL + 1 + retries
    waits = sum(max(deps.seal_retry_after_max, 0.0 if n == 1 else min(BACKOFF_MAX, BACKOFF_FACTOR * 2 ** (n - 1)))
                for n in range(1, retries + 1))
    derived = SEAL_CALLS * (requests_per_call * 2 * timeout + waits)
    return max(SEALING_BOUND_FLOOR, timedelta(seconds=derived))


def _replace_stale_pending(session: Session, issuer: Issuer, old_id: str, bound: timedelta) -> Licence | None:
    """Under the old licence's lock, delete its keyless pending version older than ``bound``
    (not committed: the caller writes its own in the same transaction, still under the lock);
    the old licence, or None (the lock let go) if there is no such version. A keyed one is left
    for its retry (and :func:`purge_abandoned`).

    The lock is the one an amendment takes to supersede the old licence once sealed: a killed
    sealing's process cannot come back past it, and if it was only slow it finds its version gone.

    :raise InvalidTransition: the licence is no longer valid or suspended (the lock let go).
    """
    old = issued_by(session, issuer, old_id, lock=True)
    if old.status not in (VALID, SUSPENDED):
        # Revoked (or amended) since the caller's first look: writing a version now would only
        # spend a signature at the seal node on a licence that can no longer change.
        session.rollback()
        raise InvalidTransition(f"a {old.status} licence cannot be amended")
    replaced = session.scalars(select(Licence.id).where(
        Licence.previous_id == old.id, Licence.status == PENDING, Licence.idempotency_key.is_(None),
        Licence.created_at < utcnow() - bound)).all()
    if not replaced:
        session.rollback()
        return None
    session.execute(delete(Licence).where(Licence.id.in_(replaced), Licence.status == PENDING)
                    .execution_options(synchronize_session=False))
    log.info("stale_pending_version_replaced", licence_id=old.id, pending_ids=list(replaced),
             older_than_seconds=bound.total_seconds())
    return old


def _discard_pending(session: Session, licence_id: str) -> None:
    """Delete a pending licence no retry can resume (commit). A failure here is left to
    :func:`purge_abandoned`: the caller is already answering the seal node's error."""
    try:
        session.rollback()
        session.execute(delete(Licence).where(Licence.id == licence_id, Licence.status == PENDING,
                                              Licence.idempotency_key.is_(None)))
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        log.warning("pending_licence_not_discarded", licence_id=licence_id)


def expire_due(session: Session, on: date | None = None) -> int:
    """Mark licences whose validity ended before ``on`` as expired; commits; how many."""
    on = on or issuing.today()
    rows = session.scalars(select(Licence).where(Licence.status.in_((VALID, SUSPENDED)),
                                                 Licence.valid_until.is_not(None), Licence.valid_until < on)).all()
    for row in rows:
        _record(session, row, "expire", EXPIRED, actor="system", client_id=None,
                reason=f"valid until {row.valid_until.isoformat()}")
    session.commit()
    return len(rows)


def purge_abandoned(session: Session, older_than: timedelta = timedelta(days=1), *,
                    keys_kept_for: timedelta = IDEMPOTENCY_KEY_RETENTION) -> int:
    """Delete pending licences no retry will complete (commits; how many):

    * made without an idempotency key (never resumed), older than ``older_than``;
    * amendment versions made with one, older than ``keys_kept_for``: the key's promise is over,
      and the version holds the licence's next identifier version, so every other amendment of
      the licence was refused (409) for as long as its client did not retry.

    Never visible, so nothing else refers to them. A keyed first issue is kept: it blocks
    nothing, and a bulk job's rows are such (the job resumes them).

    One conditional DELETE: a row sealed (made valid) since it was found is not deleted.
    """
    now = utcnow()
    purged = session.execute(delete(Licence).where(Licence.status == PENDING, or_(
        and_(Licence.idempotency_key.is_(None), Licence.created_at < now - older_than),
        and_(Licence.idempotency_key.is_not(None), Licence.previous_id.is_not(None),
             Licence.created_at < now - keys_kept_for))).execution_options(synchronize_session=False)).rowcount
    session.commit()
    return purged


def history(session: Session, licence_id: str) -> list[LicenceEvent]:
    return list(session.scalars(select(LicenceEvent).where(LicenceEvent.licence_id == licence_id)
                                .order_by(LicenceEvent.id)))
