"""The log's use cases as the auditor API, the auditor console and the CLI share them.

Flask-free: each function takes a session and a :class:`LogSettings` (origin, checkpoint
interval, key-encryption key) built once from the service's configuration.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from common.crypto.gm import SM2PublicKey
from common.crypto.keystore import load_kek
from common.crypto.signed_note import compute_key_hint
from seal.log import checkpoints, entries, keys, proofs, self_check
from seal.log.models import LogCheckpoint, LogEntry


@dataclass(frozen=True)
class LogSettings:
    origin: str  # checkpoint origin line and signed-note key name
    checkpoint_interval: float  # seconds a checkpoint may be stale while the log grows
    kek: bytes

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LogSettings:
        """From the service's settings (``SEAL_LOG_ORIGIN``, ``SEAL_LOG_CHECKPOINT_INTERVAL``, ``KEK``)."""
        return cls(origin=str(config["SEAL_LOG_ORIGIN"]),
                   checkpoint_interval=float(config["SEAL_LOG_CHECKPOINT_INTERVAL"]), kek=load_kek(config))


def signer_factory(session: Session, settings: LogSettings) -> Callable[[], checkpoints.LogSigner]:
    """Loads (decrypts) the log key only when called: most reads need no new checkpoint."""
    return lambda: keys.load_signer(session, settings.kek, settings.origin)


def publish(session: Session, settings: LogSettings) -> LogCheckpoint:
    """Sign a checkpoint now if the log grew (idempotent otherwise); commits."""
    return checkpoints.publish_checkpoint(session, signer_factory(session, settings)())


def latest(session: Session, settings: LogSettings, *, covering: int | None = None) -> LogCheckpoint:
    return checkpoints.latest_checkpoint(session, signer_factory(session, settings),
                                         max_age=settings.checkpoint_interval, covering=covering)


def checkpoint_dict(row: LogCheckpoint) -> dict[str, Any]:
    return {"tree_size": row.tree_size, "root_hash": bytes(row.root_hash).hex(), "note": row.note,
            "key_id": row.key_id, "created_at": row.created_at}


def entry_dict(entry: LogEntry) -> dict[str, Any]:
    return {"index": entry.leaf_index, "leaf": entry.leaf, "leaf_hash": bytes(entry.leaf_hash).hex(),
            "event": json.loads(entry.leaf), "ses_signature": entry.signature_b64()}


def proof_checkpoint(session: Session, settings: LogSettings, tree_size: int | None,
                     covering: int | None = None) -> LogCheckpoint:
    """The signed checkpoint a proof is made against: the asked size, or the latest one."""
    if tree_size is not None:
        return checkpoints.checkpoint_for_size(session, tree_size)
    return latest(session, settings, covering=covering)


def inclusion(session: Session, index: int, checkpoint: LogCheckpoint) -> dict[str, Any]:
    """The inclusion proof of leaf ``index`` in the tree of ``checkpoint``, with that checkpoint."""
    proof = proofs.inclusion_proof(session, index, checkpoint.tree_size)
    return {"tree_size": checkpoint.tree_size, "inclusion_proof": [h.hex() for h in proof],
            "checkpoint": checkpoint_dict(checkpoint)}


def entry_with_proof(session: Session, settings: LogSettings, index: int,
                     tree_size: int | None = None) -> dict[str, Any]:
    """:raise NotFound: no such entry or checkpoint. :raise BadRange: entry not in that tree."""
    entry = entries.get_entry(session, index)
    checkpoint = proof_checkpoint(session, settings, tree_size, covering=index)
    return {"entry": entry_dict(entry), **inclusion(session, index, checkpoint)}


def keys_document(session: Session, settings: LogSettings) -> dict[str, Any]:
    """The log's public keys (active and retired) with their signed-note key hints."""
    name = settings.origin
    documented = []
    for row in keys.public_keys(session, settings.kek):
        der = SM2PublicKey.from_pem(row.public_pem.encode()).to_der()
        documented.append({"key_id": row.kid, "name": name, "key_hint": compute_key_hint(name, der).hex(),
                           "algorithm": row.algorithm, "status": row.status, "public_key_pem": row.public_pem})
    return {"origin": name, "keys": documented}


def run_self_check(session: Session, settings: LogSettings) -> self_check.SelfCheckReport:
    return self_check.self_check(session, keys.verifiers(session, settings.kek, settings.origin))
