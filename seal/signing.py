"""Signing document digests with a seal: one at a time or in batches, every signature logged.

Flask-free. Every signature becomes a row in ``signatures`` and an entry in the signature log in
the same transaction; the log is a required collaborator (:class:`SignatureLog`): there is no
way to sign without writing it. Same checks for one or many: the caller's grant, the seal's
status and validity window, the inputs.

Idempotency: a key (per client, or per subject without a client) names one request. The same
key with the same parameters returns the first result; with other parameters it is refused. A
batch's key names the whole batch (its own namespace, ``signature_batches``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.crypto.gm import sm3
from common.db import utcnow
from common.errors import Conflict, NotFound, Problem, ValidationFailed
from common.merkle_log.driver import DriverStatement
from seal import ses
from seal.grants import Actor, NotGranted, granted_to
from seal.models import ACTIVE, Grant, Seal, Signature, SignatureBatch, new_id
from seal.private_keys import private_key
from seal.seals import SealNotFound
from seal.signature_writer import PendingSignature, SignatureLog, SignatureWriter, write_signatures
from seal.signing_state import signing_material

MAX_PROPERTY_INFO = 255
MAX_IDEMPOTENCY_KEY = 255
DEFAULT_BATCH_MAX = 100


class SealNotUsable(Problem):
    status, code, title = 409, "seal_not_usable", "The seal cannot sign"


class IdempotencyConflict(Conflict):
    code, title = "idempotency_key_reused", "Idempotency key reused with different parameters"


class BatchIdempotencyConflict(Problem):
    """The batch contract (BRIEF contract 5) answers a reused batch key with 422."""

    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused with different parameters"


@dataclass
class SignResult:
    signature: Signature
    replayed: bool
    seal_code: str | None = None  # the seal's esID, known to the signing path (saves a query)
    signature_base64: str | None = None  # of a new signature, encoded by its material (ses.SigningMaterial)


@dataclass
class BatchResult:
    signatures: list[Signature]  # in request order
    replayed: bool
    seal_code: str | None = None
    signatures_base64: list[str] | None = None  # of new signatures, as in SignResult


# -- inputs ----------------------------------------------------------------------------------


def _check_item(digest: bytes, property_info: str, where: str = "") -> None:
    if len(digest) != 32:
        raise ValidationFailed("the digest is a 32-byte SM3 digest (64 hex digits)", code="invalid_digest",
                               errors={f"{where}digest": ["64 hex digits"]})
    if not property_info or len(property_info) > MAX_PROPERTY_INFO or not property_info.isascii() \
            or not property_info.isprintable():
        raise ValidationFailed("property_info is 1–255 printable ASCII characters", code="invalid_property_info",
                               errors={f"{where}property_info": ["1–255 printable ASCII characters"]})


def _check_key(idempotency_key: str | None) -> None:
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed("Idempotency-Key is 1–255 characters", code="invalid_idempotency_key")


def _scope(actor: Actor) -> str:
    return f"client:{actor.client_id}" if actor.client_id else f"sub:{actor.sub}"


def _hash(body: dict[str, Any]) -> str:
    return sm3(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hex()


# -- the one read, and the checks every signature passes --------------------------------------


def _context(existing_id):
    """Everything signing reads, in one statement: the seal (without its picture), whether it is
    granted to the caller's subject or client, and an earlier request under the same idempotency
    key (the unique (scope, key) constraint's index answers that). Built once per kind, and run
    as fixed driver text on PostgreSQL (``common.merkle_log.driver``)."""
    return (select(Seal.id, Seal.es_id, Seal.org_code, Seal.status, Seal.status_reason, Seal.valid_start,
                   Seal.valid_end, Seal.kid, Seal.signer_serial, Seal.eseal_sm3,
                   exists().where(Grant.seal_id == Seal.id, granted_to(bindparam("sub"), bindparam("client_id")))
                   .label("granted"),
                   select(existing_id.table.c.id).where(existing_id.table.c.idempotency_scope == bindparam("scope"),
                                                        existing_id.table.c.idempotency_key == bindparam("key"))
                   .scalar_subquery().label("existing_id"))
            .where(Seal.id == bindparam("seal_id")))


_SIGN_CONTEXT = DriverStatement(_context(Signature.__table__.c.id))
_BATCH_CONTEXT = DriverStatement(_context(SignatureBatch.__table__.c.id))
_INSERT_BATCH = insert(SignatureBatch.__table__)


def _context_params(seal_id: str, actor: Actor, scope: str, key: str | None) -> dict[str, Any]:
    return {"seal_id": seal_id, "sub": actor.sub, "client_id": actor.client_id, "scope": scope, "key": key}


def _check_usable(seal: Any, actor: Actor, now: datetime) -> None:
    """:raise NotGranted: :raise SealNotUsable: suspended, revoked, or outside its validity window."""
    if not seal.granted:
        raise NotGranted(f"seal {seal.es_id} is not granted to client {actor.client_id!r} or subject {actor.sub!r}")
    if seal.status != ACTIVE:
        raise SealNotUsable(f"the seal is {seal.status}: {seal.status_reason or 'no reason given'}",
                            code=f"seal_{seal.status}")
    if not seal.valid_start <= now <= seal.valid_end:
        raise SealNotUsable("the seal is outside its validity window", code="seal_expired")


def _row(seal: Any, actor: Actor, now: datetime, digest: bytes, property_info: str, der: bytes,
         der_digest: bytes, request_hash: str, request_id: str | None, **extra: Any) -> dict[str, Any]:
    values = {"id": new_id(), "seal_id": seal.id, "signer": actor.sub, "client_id": actor.client_id,
              "idempotency_scope": None, "idempotency_key": None, "request_hash": request_hash,
              "document_digest": digest.hex(), "property_info": property_info, "signature_der": der,
              "signature_digest": der_digest.hex(), "signed_at": now, "log_index": None, "request_id": request_id,
              "note": None, "batch_id": None, "batch_position": None}
    values.update(extra)
    return values


def _signed(row: dict[str, Any]) -> Signature:
    """A new signature as callers read it: its columns by attribute. Not an ORM instance: building
    a hundred of those per batch cost a tenth of the batch's CPU, for nothing."""
    return SimpleNamespace(**row)  # type: ignore[return-value]


def _event(seal: Any, row: dict[str, Any]) -> dict[str, Any]:
    """The log entry of a signature (the leaf commits to the DER through its digest)."""
    return {"type": "sign", "time": row["signed_at"].strftime("%Y-%m-%dT%H:%M:%SZ"), "seal_id": seal.id,
            "seal_code": seal.es_id, "org_code": seal.org_code, "signer": row["signer"],
            "client_id": row["client_id"], "document_digest": row["document_digest"],
            "signature_digest": row["signature_digest"], "request_id": row["request_id"]}


# -- one signature ---------------------------------------------------------------------------


def _replay(existing: Signature, request_hash: str, seal_code: str | None = None) -> SignResult:
    if existing.request_hash != request_hash:
        raise IdempotencyConflict("this idempotency key was used for a different signing request")
    return SignResult(existing, True, seal_code)


def _existing(session: Session, scope: str, key: str) -> Signature | None:
    return session.scalars(select(Signature).where(Signature.idempotency_scope == scope,
                                                   Signature.idempotency_key == key)).first()


def sign(session: Session, kek: bytes, seal_id: str, *, actor: Actor, digest: bytes, log: SignatureLog,
         property_info: str = ses.DEFAULT_PROPERTY_INFO, idempotency_key: str | None = None,
         request_id: str | None = None, writer: SignatureWriter | None = None) -> SignResult:
    """Sign a document digest with a seal, log it and store the signature (committed).

    Statements: one read (seal, grant, idempotency), then the write
    (:func:`seal.signature_writer.write_signatures`: the head's advance with the node read it
    needs, sent together; one ``INSERT ... unnest`` each of the entry, the nodes and the
    signature with its log index; the commit), in this
    session, or, with a ``writer`` (a server's concurrent requests), in the writer's
    transaction shared with the other signatures queued at the same moment.
    :raise ValidationFailed: :raise SealNotFound: :raise NotGranted: :raise SealNotUsable:
    :raise IdempotencyConflict: (409) the key was used for other parameters.
    """
    _check_item(digest, property_info)
    _check_key(idempotency_key)
    request_hash = _hash({"seal_id": seal_id, "digest": digest.hex(), "property_info": property_info})
    scope = _scope(actor)
    params = _context_params(seal_id, actor, scope, idempotency_key)
    if writer is not None and not session.in_transaction():
        # The writer commits in its own transaction, so this one only reads, in one statement
        # (a snapshot by itself): no BEGIN and ROLLBACK around it, two round trips and the
        # backend's work for them (measured: the grouped path cost more database CPU per
        # signature than writing inline until then); on PostgreSQL without the session's
        # connection and transaction set-up either, which cost more worker CPU than the
        # statement (issue 9).
        seal = _SIGN_CONTEXT.first_alone(session, params)
    else:
        seal = _SIGN_CONTEXT.first(session, params)
    if seal is None:
        if idempotency_key is not None:  # a replay names its seal, but answer it as before
            existing = _existing(session, scope, idempotency_key)
            if existing is not None:
                return _replay(existing, request_hash)
        raise SealNotFound(f"no seal {seal_id}")
    if seal.existing_id is not None:
        return _replay(session.get(Signature, seal.existing_id), request_hash, seal.es_id)
    now = utcnow().replace(microsecond=0)
    _check_usable(seal, actor, now)

    material = signing_material(session, seal)
    der, der_digest = material.sign(private_key(session, kek, seal.kid), time_info=now, data_hash=digest,
                                    property_info=property_info)
    values = _row(seal, actor, now, digest, property_info, der, der_digest, request_hash, request_id,
                  idempotency_scope=scope if idempotency_key else None, idempotency_key=idempotency_key)
    pending = [PendingSignature(values, _event(seal, values))]
    try:
        # The log append first, then the signature row with its index (write_signatures). An
        # idempotency race fails at the INSERT and rolls the append back with it (no gap: the
        # indexes are released).
        if writer is None:
            write_signatures(session, log, pending)
            session.commit()
        else:
            session.rollback()  # ends the read's transaction: the writer commits in its own
            writer.submit(pending)
    except IntegrityError:
        session.rollback()
        if idempotency_key is not None:
            existing = _existing(session, scope, idempotency_key)
            if existing is not None:  # a concurrent request with the same key won the race
                return _replay(existing, request_hash, seal.es_id)
        raise
    return SignResult(_signed(values), False, seal.es_id, material.signature_base64(der))


def get_signature(session: Session, signature_id: str) -> Signature:
    """:raise NotFound:"""
    row = session.get(Signature, signature_id)
    if row is None:
        raise NotFound(f"no signature {signature_id}", code="signature_not_found")
    return row


# -- a batch ---------------------------------------------------------------------------------


def _batch_replay(session: Session, batch: SignatureBatch, request_hash: str,
                  seal_code: str | None = None) -> BatchResult:
    if batch.request_hash != request_hash:
        raise BatchIdempotencyConflict("this idempotency key was used for a different batch")
    rows = session.scalars(select(Signature).where(Signature.batch_id == batch.id)
                           .order_by(Signature.batch_position))
    return BatchResult(list(rows), True, seal_code)


def _existing_batch(session: Session, scope: str, key: str) -> SignatureBatch | None:
    return session.scalars(select(SignatureBatch).where(SignatureBatch.idempotency_scope == scope,
                                                        SignatureBatch.idempotency_key == key)).first()


def sign_batch(session: Session, kek: bytes, seal_id: str, *, actor: Actor, items: Sequence[tuple[bytes, str]],
               log: SignatureLog, max_items: int = DEFAULT_BATCH_MAX, idempotency_key: str | None = None,
               request_id: str | None = None) -> BatchResult:
    """Sign ``(digest, property_info)`` items with one seal: all of them, in order, or none (committed).

    Each item is its own ``SES_Signature`` and its own log entry, in request order, with the same
    checks as :func:`sign`. The seal version's signing state is prepared once for the batch; the
    log takes all its entries in one append.
    :raise ValidationFailed: (422) no items, more than ``max_items``, or a bad item (nothing is signed).
    :raise SealNotFound: :raise NotGranted: :raise SealNotUsable:
    :raise BatchIdempotencyConflict: (422) the key was used for another batch.
    """
    if not items:
        raise ValidationFailed("a batch has at least one item", code="batch_empty", errors={"items": ["empty"]})
    if len(items) > max_items:
        raise ValidationFailed(f"a batch has at most {max_items} items", code="batch_too_large",
                               errors={"items": [f"at most {max_items}"]}, limit=max_items)
    for position, (digest, property_info) in enumerate(items):
        _check_item(digest, property_info, where=f"items.{position}.")
    _check_key(idempotency_key)
    request_hash = _hash({"seal_id": seal_id, "items": [[digest.hex(), info] for digest, info in items]})
    scope = _scope(actor)
    seal = _BATCH_CONTEXT.first(session, _context_params(seal_id, actor, scope, idempotency_key))
    if seal is None:
        existing = _existing_batch(session, scope, idempotency_key) if idempotency_key is not None else None
        if existing is not None:
            return _batch_replay(session, existing, request_hash)
        raise SealNotFound(f"no seal {seal_id}")
    if seal.existing_id is not None:
        return _batch_replay(session, session.get(SignatureBatch, seal.existing_id), request_hash, seal.es_id)
    now = utcnow().replace(microsecond=0)
    _check_usable(seal, actor, now)

    material = signing_material(session, seal)  # once per batch, as is the key
    key = private_key(session, kek, seal.kid)
    batch_id = new_id()
    rows = []
    for position, (digest, property_info) in enumerate(items):
        der, der_digest = material.sign(key, time_info=now, data_hash=digest, property_info=property_info)
        rows.append(_row(seal, actor, now, digest, property_info, der, der_digest, request_hash, request_id,
                         batch_id=batch_id, batch_position=position))
    connection = session.connection()
    try:
        # As for one signature: the batch row (and an idempotency race) before the log's lock.
        connection.execute(_INSERT_BATCH, {"id": batch_id, "seal_id": seal.id, "signer": actor.sub,
                                           "client_id": actor.client_id,
                                           "idempotency_scope": scope if idempotency_key else None,
                                           "idempotency_key": idempotency_key, "request_hash": request_hash,
                                           "size": len(rows), "created_at": now})
        write_signatures(session, log, [PendingSignature(row, _event(seal, row)) for row in rows])
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = _existing_batch(session, scope, idempotency_key) if idempotency_key is not None else None
        if existing is not None:  # a concurrent request with the same key won the race
            return _batch_replay(session, existing, request_hash, seal.es_id)
        raise
    except BaseException:
        session.rollback()
        raise
    return BatchResult([_signed(row) for row in rows], False, seal.es_id,
                       [material.signature_base64(row["signature_der"]) for row in rows])
