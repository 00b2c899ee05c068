"""Appending events to the log, inside the signer's transaction: one event or a batch in one go.

A batch costs what one append costs, give or take its rows: one head ``UPDATE ... RETURNING``
reserving every index with one read of the left siblings it needs from the store (on PostgreSQL
sent together, ``MerkleNodeStore.append_nodes``), one ``INSERT ... unnest`` of the entries and one
of the nodes (``RowsInsert``) (see :mod:`seal.log.tree` for ordering).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import rfc8785
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.db import utcnow
from common.merkle_log.driver import RowsInsert
from seal.log.models import LogEntry, LogNode
from seal.log.tree import HASH, append_nodes

EVENT_FIELDS = ("type", "time", "seal_id", "seal_code", "org_code", "signer", "client_id",
                "document_digest", "signature_digest", "request_id")
# Search columns copied from the leaf (the leaf stays the authority; self-check compares them).
INDEXED_FIELDS = ("seal_id", "seal_code", "org_code", "signer", "client_id", "document_digest",
                  "signature_digest", "request_id")

# Run on the driver itself, on PostgreSQL (fixed text of column arrays) and on SQLite's sqlite3
# (its own executemany): every column is given, so there are no defaults to fill.
_INSERT_ENTRY = RowsInsert(LogEntry.__table__)
_INSERT_NODES = RowsInsert(LogNode.__table__)


def _plain(value: Any) -> bool:
    return value is None or (type(value) is str and value.isascii())


def canonical_leaf(event: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of an event: the bytes the tree commits to.

    A signing event is a flat object of ASCII strings (or nulls); for those, sorted compact
    ``json.dumps`` writes the very bytes RFC 8785 prescribes (same key order, same escapes:
    ``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t`` and lowercase ``\\u00xx`` for the other control
    characters) at a fifth of the pure-Python serializer's cost, which every signature pays
    (the tests compare both on arbitrary such events). Anything else goes through ``rfc8785``.
    """
    if all(type(key) is str and key.isascii() and _plain(value) for key, value in event.items()):
        return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return rfc8785.dumps(event)


def str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _event_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("event time must be an ISO 8601 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("event time must carry a UTC offset")
    return parsed


def _entry_values(event: dict[str, Any], appended_at: datetime) -> dict[str, Any]:
    """The entry row of one event, without its index. :raise ValueError: no type or no valid time."""
    if not isinstance(event.get("type"), str) or not event["type"]:
        raise ValueError("a log event needs a 'type'")
    when = _event_time(event.get("time"))
    leaf = canonical_leaf(event)
    values = {name: str_or_none(event.get(name)) for name in INDEXED_FIELDS}
    values.update(leaf=leaf.decode(), leaf_hash=merkle.leaf_hash(leaf, hash_fn=HASH), event_type=event["type"],
                  time=when, ses_signature=None, appended_at=appended_at)
    return values


def append_events(session: Session, events: Sequence[dict[str, Any]]) -> list[int]:
    """Append ``events`` in order; returns their leaf indexes.

    The caller commits (the entries become visible and durable with the signatures that caused
    them) or rolls back (the indexes are released; no gap remains). Every event is checked
    before anything is written.
    :raise ValueError: an event has no ``type`` or no valid ``time``.
    """
    now = utcnow()
    return _append(session, [_entry_values(event, now) for event in events])


def append_event(session: Session, event: dict[str, Any], *, ses_der: bytes | None = None) -> int:
    """Append one event (see :func:`append_events`); returns its leaf index.

    ``ses_der``: the entry carries its own base64 copy of the signature, as entries written
    before ``seal_0007`` do (signing stores the DER in its ``signatures`` row only); for the
    tests of the readers, the export and the self-check, which still accept such entries.
    """
    row = _entry_values(event, utcnow())
    if ses_der is not None:
        row["ses_signature"] = base64.b64encode(ses_der).decode()
    return _append(session, [row])[0]


def _append(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    first, nodes = append_nodes(session, [row["leaf_hash"] for row in rows])
    for offset, row in enumerate(rows):
        row["leaf_index"] = first + offset
    _INSERT_ENTRY.execute_many(session, rows)
    _INSERT_NODES.execute_many(session, nodes)
    return [row["leaf_index"] for row in rows]


class DatabaseLog:
    """The log as signing writes to it (the ``seal.signing.SignatureLog`` interface).

    The entries leave ``ses_signature`` empty: signing stores each DER once, in the signature's
    row with the entry's index, where the entry reads it (``LogEntry.signature_der``). A second,
    base64 copy in the entry doubled what a signature writes (~41 KB instead of ~18 KB) and
    cost the database about as much CPU per batch signature again (docs/ARCHITECTURE.md, seal).
    The leaf commits to the DER through its ``signature_digest`` either way.
    """

    def append_events(self, session: Session, events: Sequence[dict[str, Any]]) -> list[int]:
        return append_events(session, events)


SIGNATURE_LOG = DatabaseLog()
