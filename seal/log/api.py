"""Auditor API of the signature log (scope ``audit:read``), modelled on Trillian / Rekor.

Every request to this blueprint, refused ones included, is recorded in ``audit_queries`` in
its own transaction; if that record cannot be written the request fails (audit never drops
silently). :func:`init_log` is the one place the log is wired into the seal app.
"""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from common.db import get_db, get_session
from common.web.audit import audit_requests
from common.web.auditor_api import add_consistency_view, auditor_view
from seal.log import checkpoints, entries, proofs
from seal.log import schemas as s
from seal.log.audit_queries import AuditQueryStore, list_queries
from seal.log.service import (
    LogSettings,
    checkpoint_dict,
    entry_dict,
    entry_with_proof,
    inclusion,
    keys_document,
    latest,
    proof_checkpoint,
    run_self_check,
)

AUDIT_SCOPE = "audit:read"

blp = Blueprint("seal_log", __name__, url_prefix="/log", description=(
    "Signature transparency log (RFC 9162 Merkle tree with SM3, C2SP signed-note checkpoints "
    "signed with SM2). Hashes are lowercase hex. A checkpoint is signed every "
    "SEAL_LOG_CHECKPOINT_INTERVAL seconds (5) when the log grew, and on demand when a reader finds "
    "the newest one stale or a proof needs a newer one. Every call needs scope audit:read "
    "and is itself recorded in the audit query log."))
# Every view: a token with audit:read, the bearer requirement documented.
auditor = auditor_view(blp, AUDIT_SCOPE)


def settings() -> LogSettings:
    """The log's settings, built once per app from its configuration."""
    settings = current_app.extensions.get("seal_log_settings")
    if settings is None:
        settings = current_app.extensions["seal_log_settings"] = LogSettings.from_config(current_app.config)
    return settings


# Every request to this blueprint, refused ones included, is an audit record (common.web.audit).
audit_requests(blp, lambda: AuditQueryStore(get_db()))


# -- views ----------------------------------------------------------------------------------


@blp.route("/checkpoint")
class LatestCheckpoint(MethodView):
    @auditor
    @blp.response(200, s.CheckpointSchema)
    def get(self):
        """The latest signed checkpoint (re-signed first if the log grew and it is stale)."""
        return checkpoint_dict(latest(get_session(), settings()))


@blp.route("/checkpoints")
class Checkpoints(MethodView):
    @auditor
    @blp.arguments(s.PageArgs, location="query")
    @blp.response(200, s.CheckpointPageSchema)
    def get(self, args):
        """Historical checkpoints, newest first (every published checkpoint is kept)."""
        rows, total = checkpoints.list_checkpoints(get_session(), page=args["page"], per_page=args["per_page"])
        return {"items": [checkpoint_dict(r) for r in rows], "total": total, **args}


@blp.route("/entries")
class Entries(MethodView):
    @auditor
    @blp.arguments(s.RangeArgs, location="query")
    @blp.response(200, s.EntryListSchema)
    def get(self, args):
        """Entries ``[start, end)`` by leaf index, at most 100 at a time."""
        return {"items": [entry_dict(e) for e in entries.entries_range(get_session(), args["start"], args["end"])]}


@blp.route("/entries/<bigint:index>")
class EntryProof(MethodView):
    @auditor
    @blp.arguments(s.TreeSizeArgs, location="query")
    @blp.response(200, s.EntryProofSchema)
    def get(self, args, index):
        """One entry with its inclusion proof and the signed checkpoint the proof leads to."""
        return entry_with_proof(get_session(), settings(), index, args.get("tree_size"))


@blp.route("/proof/inclusion")
class InclusionByHash(MethodView):
    @auditor
    @blp.arguments(s.LeafHashArgs, location="query")
    @blp.response(200, s.InclusionSchema)
    def get(self, args):
        """Inclusion proof of a leaf given its hash, against a signed checkpoint."""
        session = get_session()
        checkpoint = proof_checkpoint(session, settings(), args.get("tree_size"))
        entry = entries.find_by_leaf_hash(session, bytes.fromhex(args["leaf_hash"]), checkpoint.tree_size)
        return {"leaf_index": entry.leaf_index, **inclusion(session, entry.leaf_index, checkpoint)}


Consistency = add_consistency_view(
    blp, AUDIT_SCOPE, response=s.ConsistencySchema,
    latest_size=lambda session: latest(session, settings()).tree_size, proof=proofs.consistency_proof,
    doc="Consistency proof that the tree of size ``second`` extends the tree of size ``first``.")


@blp.route("/search")
class Search(MethodView):
    @auditor
    @blp.arguments(s.SearchArgs, location="query")
    @blp.response(200, s.EntryPageSchema)
    def get(self, args):
        """Search entries by seal, organisation, signer, document digest and signing time.

        **The search is an index, not itself proven**: it reads columns copied from the leaves
        and may in principle omit or misplace entries. What is authenticated is each returned
        entry's inclusion proof (``GET /log/entries/{index}``) against a signed checkpoint; to
        be sure nothing is missing, fetch the full range and check it against a checkpoint.
        """
        query = entries.SearchQuery(**{k: args.get(k) for k in ("seal_id", "seal_code", "org_code", "signer",
                                                            "document_digest", "since", "until")})
        rows, total = entries.search_entries(get_session(), query, page=args["page"], per_page=args["per_page"])
        return {"items": [entry_dict(e) for e in rows], "total": total, "page": args["page"],
                "per_page": args["per_page"]}


@blp.route("/keys")
class Keys(MethodView):
    @auditor
    @blp.response(200, s.LogKeysSchema)
    def get(self):
        """The log's public keys (active and retired), PEM with their signed-note key hints."""
        session = get_session()
        latest(session, settings())  # make sure a key exists before listing keys
        return keys_document(session, settings())


@blp.route("/self-check")
class SelfCheck(MethodView):
    @auditor
    @blp.response(200, s.SelfCheckSchema)
    def get(self):
        """Recompute every leaf and node from the stored entries and check every checkpoint.

        Reports changed, missing or inserted entries and nodes, search columns that differ from
        their leaves, stored signatures that do not match their digest, and checkpoints whose
        signature, root or mutual consistency fails. Reads the whole log.
        """
        return run_self_check(get_session(), settings()).to_dict()


@blp.route("/audit-queries")
class AuditQueries(MethodView):
    @auditor
    @blp.arguments(s.PageArgs, location="query")
    @blp.response(200, s.AuditQueryPageSchema)
    def get(self, args):
        """The record of auditor queries (who, what, when, outcome), newest first."""
        rows, total = list_queries(get_session(), page=args["page"], per_page=args["per_page"])
        return {"items": rows, "total": total, **args}
