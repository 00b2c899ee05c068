"""Auditor API of the gateway's audit log (scope ``audit:read``), on the gateway's Flask app.

Every request to this blueprint, refused ones included, is itself appended to the audit log
(kind ``audit_query``: who asked what, and how it went) in its own transaction before the
response leaves; if that cannot be written the answer is a 503, never an unaudited answer.
:func:`gateway.audit.pages.init_audit` is the one place the audit log is wired into the gateway app.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from common.crypto.keystore import load_kek
from common.db import get_db, get_session, utcnow
from common.web.auditor_api import add_consistency_view, auditor_view
from common.web.problems import problem_response
from gateway.audit import checkpoints, evidence, log
from gateway.audit import schemas as s
from gateway.audit.config import setting
from gateway.audit.models import AuditRecord
from gateway.audit.spool import AuditUnavailable

AUDIT_SCOPE = "audit:read"
blp = Blueprint("gateway_audit", __name__, url_prefix="/audit", description=(
    "Audit log of every call through the gateway: one record per request (time, request id, client, "
    "subject, assurance level, source address, method, route, path, status, latency, bytes, outcome, "
    "upstream), in an RFC 9162 Merkle tree with SM3 and SM2-signed C2SP checkpoints. Every call needs "
    "scope audit:read and is itself recorded in the same log."))
# Every view: a token with audit:read, the bearer requirement documented.
auditor = auditor_view(blp, AUDIT_SCOPE)


# -- helpers shared with the console --------------------------------------------------------


def origin(app: Flask | None = None) -> str:
    return str(setting((app or current_app).config, "AUDIT_LOG_ORIGIN"))


def signer_factory(session, app: Flask | None = None):
    app = app or current_app
    return lambda: checkpoints.load_signer(session, load_kek(app.config), origin(app))


def latest(session, *, covering: int | None = None):
    return checkpoints.latest(session, signer_factory(session),
                              max_age=float(setting(current_app.config, "AUDIT_CHECKPOINT_INTERVAL")),
                              covering=covering)


def keys_document(session) -> dict[str, Any]:
    return checkpoints.keys_document(session, load_kek(current_app.config), origin())


def record_dict(row: AuditRecord) -> dict[str, Any]:
    import json

    return {"index": row.leaf_index, "leaf_hash": bytes(row.leaf_hash).hex(), "leaf": row.leaf,
            "record": json.loads(row.leaf)}


def record_with_proof(session, index: int) -> dict[str, Any]:
    """A record and its one-record bundle against the latest checkpoint. :raise NotFound:"""
    row = log.get_record(session, index)
    checkpoint = latest(session, covering=index)
    bundle = evidence.assemble(session, checkpoint, keys_document(session), start=index, end=index + 1)
    return {**record_dict(row), "bundle": bundle}


def record_query(*, action: str, status: int, subject: str | None, client_id: str | None,
                 acr: str | None = None, reason: str | None = None) -> None:
    """Append one auditor query to the log and commit, in a session of its own.

    :raise AuditUnavailable: it could not be written (the caller must not answer normally).
    """
    outcome = "ok" if status < 400 else "denied" if status in (401, 403) else "error"
    record = {"kind": "audit_query", "time": utcnow().isoformat(), "request_id": g.get("request_id"),
              "client_id": client_id, "subject": subject, "acr": acr, "source": request.remote_addr,
              "method": request.method, "route": f"audit:{action}", "path": request.path, "status": status,
              "outcome": outcome, "reason": reason, "query": request.args.to_dict(flat=False)}
    try:
        with get_db().session() as session:
            log.append_records(session, [record])
            session.commit()
    except Exception as exc:  # any failure to write the audit record fails the request
        raise AuditUnavailable("the auditor's query could not be recorded") from exc


@blp.after_request
def _record_query(response):
    claims = g.get("token_claims") or {}
    try:
        record_query(action=(request.endpoint or "").removeprefix("gateway_audit."), status=response.status_code,
                     subject=g.get("subject"), client_id=g.get("client_id"), acr=claims.get("acr"),
                     reason=None if response.status_code < 400 else (response.get_json(silent=True) or {}).get("code"))
    except AuditUnavailable as exc:
        return problem_response(exc.to_dict())
    return response


# -- views ----------------------------------------------------------------------------------


@blp.route("/records")
class Records(MethodView):
    @auditor
    @blp.arguments(s.SearchArgs, location="query")
    @blp.response(200, s.RecordPageSchema)
    def get(self, args):
        """Search records by time range, client, subject, route, status, request id; newest first.

        The search reads indexed copies of the records' fields; what proves a record is its
        bundle (``GET /audit/records/{index}``) checked against a signed checkpoint.
        """
        query = log.SearchQuery(**{k: args.get(k) for k in ("since", "until", "client_id", "subject", "route",
                                                            "status", "request_id", "kind")})
        rows, total = log.search(get_session(), query, page=args["page"], per_page=args["per_page"])
        return {"items": [record_dict(r) for r in rows], "total": total, "page": args["page"],
                "per_page": args["per_page"]}


@blp.route("/records/<bigint:index>")
class RecordProof(MethodView):
    @auditor
    @blp.response(200, s.RecordProofSchema)
    def get(self, index):
        """One record with a one-record bundle (signed checkpoint and range proof)."""
        return record_with_proof(get_session(), index)


@blp.route("/checkpoint")
class LatestCheckpoint(MethodView):
    @auditor
    @blp.response(200, s.CheckpointSchema)
    def get(self):
        """The latest signed checkpoint (signed first if the log grew and it is stale)."""
        return checkpoints.as_dict(latest(get_session()))


@blp.route("/export")
class Export(MethodView):
    @auditor
    @blp.arguments(s.ExportArgs, location="query")
    @blp.response(200, s.BundleSchema)
    def get(self, args):
        """Records ``[start, end)`` with a signed checkpoint, a range proof and consistency proofs.

        Save it and check it offline: ``xsn audit verify --bundle FILE --key KEY.pem``.
        """
        session = get_session()
        if "tree_size" in args:
            row = checkpoints.for_size(session, args["tree_size"])
        else:
            row = latest(session, covering=args["end"] - 1)
        return evidence.assemble(session, row, keys_document(session), start=args["start"], end=args["end"],
                                 consistency_from=args["consistency_from"])


Consistency = add_consistency_view(
    blp, AUDIT_SCOPE, response=s.ConsistencySchema,
    latest_size=lambda session: latest(session).tree_size, proof=log.consistency_proof,
    doc="Proof that the tree of size ``second`` extends the tree of size ``first``.")


@blp.route("/keys")
class Keys(MethodView):
    @auditor
    @blp.response(200, s.KeysSchema)
    def get(self):
        """The log's SM2 public keys (active and retired) with their signed-note key hints."""
        session = get_session()
        latest(session)  # a key exists once a checkpoint does
        return keys_document(session)
