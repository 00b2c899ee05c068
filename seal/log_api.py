"""Auditor API of the signature log (scope ``audit:read``), modelled on Trillian / Rekor.

Every request to this blueprint, refused ones included, is recorded in ``audit_queries`` in
its own transaction; if that record cannot be written the request fails (audit never drops
silently). :func:`init_log` is the one place the log is wired into the seal app.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, current_app, g, request
from flask.views import MethodView
from flask_smorest import Api, Blueprint

from common.crypto.keystore import load_kek
from common.crypto.signed_note import compute_key_hint
from common.db import get_db, get_session
from common.web.auth import require_token
from seal import log
from seal import log_schemas as s
from seal.log_models import LogCheckpoint, LogEntry

AUDIT_SCOPE = "audit:read"
SETTINGS: dict[str, Any] = {
    "SEAL_LOG_ORIGIN": "xsn.xian/seal-log",  # checkpoint origin line and signed-note key name
    "SEAL_LOG_CHECKPOINT_INTERVAL": 5,  # seconds: a grown log gets a new checkpoint at most this stale
}

blp = Blueprint("seal_log", __name__, url_prefix="/log", description=(
    "Signature transparency log (RFC 9162 Merkle tree with SM3, C2SP signed-note checkpoints "
    "signed with SM2). Hashes are lowercase hex. A checkpoint is signed every "
    "SEAL_LOG_CHECKPOINT_INTERVAL seconds (5) when the log grew, and on demand when a reader finds "
    "the newest one stale or a proof needs a newer one. Every call needs scope audit:read "
    "and is itself recorded in the audit query log."))
AUTH_DOC = {"security": [{"bearerAuth": []}]}


# -- helpers shared with the pages and the CLI ----------------------------------------------


def origin(app: Flask | None = None) -> str:
    return str((app or current_app).config["SEAL_LOG_ORIGIN"])


def signer_factory(session, app: Flask | None = None):
    app = app or current_app
    return lambda: log.load_signer(session, load_kek(app.config), origin(app))


def latest(session, *, covering: int | None = None) -> LogCheckpoint:
    return log.latest_checkpoint(session, signer_factory(session),
                                 max_age=float(current_app.config["SEAL_LOG_CHECKPOINT_INTERVAL"]),
                                 covering=covering)


def checkpoint_dict(row: LogCheckpoint) -> dict[str, Any]:
    return {"tree_size": row.tree_size, "root_hash": bytes(row.root_hash).hex(), "note": row.note,
            "key_id": row.key_id, "created_at": row.created_at}


def entry_dict(entry: LogEntry) -> dict[str, Any]:
    return {"index": entry.leaf_index, "leaf": entry.leaf, "leaf_hash": bytes(entry.leaf_hash).hex(),
            "event": json.loads(entry.leaf), "ses_signature": entry.ses_signature}


def proof_checkpoint(session, tree_size: int | None, covering: int | None = None) -> LogCheckpoint:
    """The signed checkpoint a proof is made against: the asked size, or the latest one."""
    if tree_size is not None:
        return log.checkpoint_for_size(session, tree_size)
    return latest(session, covering=covering)


def _inclusion(session, index: int, checkpoint: LogCheckpoint) -> dict[str, Any]:
    """The inclusion proof of leaf ``index`` in the tree of ``checkpoint``, with that checkpoint."""
    proof = log.inclusion_proof(session, index, checkpoint.tree_size)
    return {"tree_size": checkpoint.tree_size, "inclusion_proof": [h.hex() for h in proof],
            "checkpoint": checkpoint_dict(checkpoint)}


def entry_with_proof(session, index: int, tree_size: int | None = None) -> dict[str, Any]:
    """:raise NotFound: no such entry or checkpoint. :raise BadRange: entry not in that tree."""
    entry = log.get_entry(session, index)
    checkpoint = proof_checkpoint(session, tree_size, covering=index)
    return {"entry": entry_dict(entry), **_inclusion(session, index, checkpoint)}


def keys_document(session, app: Flask | None = None) -> dict[str, Any]:
    app = app or current_app
    name = origin(app)
    rows = log.public_keys(session, load_kek(app.config))
    keys = []
    for row in rows:
        from common.crypto.gm import SM2PublicKey

        der = SM2PublicKey.from_pem(row.public_pem.encode()).to_der()
        keys.append({"key_id": row.kid, "name": name, "key_hint": compute_key_hint(name, der).hex(),
                     "algorithm": row.algorithm, "status": row.status, "public_key_pem": row.public_pem})
    return {"origin": name, "keys": keys}


def run_self_check(session, app: Flask | None = None) -> log.SelfCheckReport:
    app = app or current_app
    return log.self_check(session, log.verifiers(session, load_kek(app.config), origin(app)))


# -- audit of the auditors ------------------------------------------------------------------


@blp.after_request
def _record_query(response):
    database = get_db()
    with database.session() as session:
        log.record_query(session, subject=g.get("subject"), client_id=g.get("client_id"),
                         action=(request.endpoint or "").removeprefix("seal_log."),
                         query={"path": request.path, "args": request.args.to_dict(flat=True)},
                         status=response.status_code, request_id=g.get("request_id"))
        session.commit()
    return response


# -- views ----------------------------------------------------------------------------------


@blp.route("/checkpoint")
class LatestCheckpoint(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.response(200, s.CheckpointSchema)
    def get(self):
        """The latest signed checkpoint (re-signed first if the log grew and it is stale)."""
        return checkpoint_dict(latest(get_session()))


@blp.route("/checkpoints")
class Checkpoints(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.arguments(s.PageArgs, location="query")
    @blp.response(200, s.CheckpointPageSchema)
    def get(self, args):
        """Historical checkpoints, newest first (every published checkpoint is kept)."""
        rows, total = log.list_checkpoints(get_session(), page=args["page"], per_page=args["per_page"])
        return {"items": [checkpoint_dict(r) for r in rows], "total": total, **args}


@blp.route("/entries")
class Entries(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.arguments(s.RangeArgs, location="query")
    @blp.response(200, s.EntryListSchema)
    def get(self, args):
        """Entries ``[start, end)`` by leaf index, at most 100 at a time."""
        return {"items": [entry_dict(e) for e in log.entries_range(get_session(), args["start"], args["end"])]}


@blp.route("/entries/<int:index>")
class EntryProof(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.arguments(s.TreeSizeArgs, location="query")
    @blp.response(200, s.EntryProofSchema)
    def get(self, args, index):
        """One entry with its inclusion proof and the signed checkpoint the proof leads to."""
        return entry_with_proof(get_session(), index, args.get("tree_size"))


@blp.route("/proof/inclusion")
class InclusionByHash(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.arguments(s.LeafHashArgs, location="query")
    @blp.response(200, s.InclusionSchema)
    def get(self, args):
        """Inclusion proof of a leaf given its hash, against a signed checkpoint."""
        session = get_session()
        checkpoint = proof_checkpoint(session, args.get("tree_size"))
        entry = log.find_by_leaf_hash(session, bytes.fromhex(args["leaf_hash"]), checkpoint.tree_size)
        return {"leaf_index": entry.leaf_index, **_inclusion(session, entry.leaf_index, checkpoint)}


@blp.route("/proof/consistency")
class Consistency(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.arguments(s.ConsistencyArgs, location="query")
    @blp.response(200, s.ConsistencySchema)
    def get(self, args):
        """Consistency proof that the tree of size ``second`` extends the tree of size ``first``."""
        session = get_session()
        second = args["second"] if "second" in args else latest(session).tree_size
        proof = log.consistency_proof(session, args["first"], second)
        return {"first": args["first"], "second": second, "proof": [h.hex() for h in proof]}


@blp.route("/search")
class Search(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.arguments(s.SearchArgs, location="query")
    @blp.response(200, s.EntryPageSchema)
    def get(self, args):
        """Search entries by seal, organisation, signer, document digest and signing time.

        **The search is an index, not itself proven**: it reads columns copied from the leaves
        and may in principle omit or misplace entries. What is authenticated is each returned
        entry's inclusion proof (``GET /log/entries/{index}``) against a signed checkpoint; to
        be sure nothing is missing, fetch the full range and check it against a checkpoint.
        """
        query = log.SearchQuery(**{k: args.get(k) for k in ("seal_id", "seal_code", "org_code", "signer",
                                                            "document_digest", "since", "until")})
        rows, total = log.search_entries(get_session(), query, page=args["page"], per_page=args["per_page"])
        return {"items": [entry_dict(e) for e in rows], "total": total, "page": args["page"],
                "per_page": args["per_page"]}


@blp.route("/keys")
class Keys(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.response(200, s.LogKeysSchema)
    def get(self):
        """The log's public keys (active and retired), PEM with their signed-note key hints."""
        session = get_session()
        latest(session)  # make sure a key exists before listing keys
        return keys_document(session)


@blp.route("/self-check")
class SelfCheck(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.response(200, s.SelfCheckSchema)
    def get(self):
        """Recompute every leaf and node from the stored entries and check every checkpoint.

        Reports changed, missing or inserted entries and nodes, search columns that differ from
        their leaves, stored signatures that do not match their digest, and checkpoints whose
        signature, root or mutual consistency fails. Reads the whole log.
        """
        return run_self_check(get_session()).to_dict()


@blp.route("/audit-queries")
class AuditQueries(MethodView):
    @require_token(AUDIT_SCOPE)
    @blp.doc(**AUTH_DOC)
    @blp.arguments(s.PageArgs, location="query")
    @blp.response(200, s.AuditQueryPageSchema)
    def get(self, args):
        """The record of auditor queries (who, what, when, outcome), newest first."""
        rows, total = log.list_queries(get_session(), page=args["page"], per_page=args["per_page"])
        return {"items": rows, "total": total, **args}


def init_log(app: Flask, api: Api) -> None:
    """Wire the log into the seal app: settings, the auditor API, the auditor console."""
    for key, value in SETTINGS.items():
        app.config.setdefault(key, value)
    api.register_blueprint(blp)
    from seal.log_pages import init_pages

    init_pages(app)
