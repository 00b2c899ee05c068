"""REST API of the licences node for the catalogue and issuing departments (thin views).

Scopes (identity's access tokens, audience ``xsn:licenses``):

* open — reading the catalogue;
* ``licenses:admin`` — managing the catalogue;
* ``licenses:issue`` — issuing and changing licences, bulk jobs; the department comes from the
  token (see :mod:`licenses.config`); a department sees and changes only its own licences.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from common.db import get_session
from common.web import idempotency
from common.web.auth import BEARER, current_claims, require_token
from common.web.context import current_app_object

from . import catalogue, issuing, lifecycle
from .bulk import jobs
from .issuers import Issuer, choose_issuer, issuers_for
from .issuing import Deps, IssueRequest
from .models import PENDING, Licence, LicenceType
from .schemas import (
    AmendSchema,
    BulkJobSchema,
    IssueSchema,
    LicenceQuerySchema,
    LicenceSchema,
    LicenceTypeSchema,
    LicenceTypeUpdateSchema,
    StatusChangeSchema,
    TypeStatusSchema,
)

types_blp = Blueprint("types", __name__, url_prefix="/types", description="The licence catalogue (证照目录)")
issue_blp = Blueprint("licences", __name__, url_prefix="/licences", description="Issuing and lifecycle")
bulk_blp = Blueprint("bulk", __name__, url_prefix="/bulk-jobs", description="Bulk issuance (批量发证)")


def node() -> dict[str, Any]:
    return current_app_object().extensions["licenses"]


def deps() -> Deps:
    return node()["deps"]


def actor() -> str:
    return str(current_claims().get("sub", ""))


def issuer(requested: str | None = None) -> Issuer:
    return choose_issuer(issuers_for(current_claims(), current_app.config), requested)


def type_view(row: LicenceType) -> dict[str, Any]:
    data = {c: getattr(row, c) for c in ("code", "slug", "name", "name_en", "holder_kind", "issuers", "validity_days",
                                         "seal_kind", "face_prefix", "status", "created_at", "updated_at")}
    data["face"] = row.fields
    return data


def licence_view(row: Licence, *, face: bool = True, history: bool = False) -> dict[str, Any]:
    from .verification import licence_summary

    session = get_session()
    licence_type = session.get(LicenceType, row.type_code)
    data = licence_summary(row, licence_type)
    data.update(id=row.id, status_reason=row.status_reason, document_sm3=row.document_sm3, seal_id=row.seal_id,
                signature_id=row.signature_id, signed_at=row.signed_at)
    if row.previous_id:
        previous = session.get(Licence, row.previous_id)
        data["supersedes"] = previous.identifier if previous else None
    if face:
        data["face"] = issuing.face_of(deps(), row)
        data["labels"] = {spec["name"]: spec["label"] for spec in licence_type.fields}
    if history:
        data["history"] = lifecycle.history(session, row.id)
    return data


# -- catalogue ----------------------------------------------------------------------------------
@types_blp.route("")
class Types(MethodView):
    @types_blp.response(200, LicenceTypeSchema(many=True))
    def get(self):
        """The catalogue's active licence types."""
        return [type_view(t) for t in catalogue.list_types(get_session())]

    @types_blp.arguments(LicenceTypeSchema)
    @types_blp.response(201, LicenceTypeSchema)
    @types_blp.doc(security=BEARER)
    @require_token("licenses:admin")
    def post(self, body):
        """Add a licence type."""
        body["fields"] = body.pop("face")
        return type_view(catalogue.create_type(get_session(), body, actor=actor()))


@types_blp.route("/<code>")
class TypeItem(MethodView):
    @types_blp.response(200, LicenceTypeSchema)
    def get(self, code):
        """A licence type by code or slug."""
        return type_view(catalogue.get_type(get_session(), code))

    @types_blp.arguments(LicenceTypeUpdateSchema)
    @types_blp.response(200, LicenceTypeSchema)
    @types_blp.doc(security=BEARER)
    @require_token("licenses:admin")
    def put(self, body, code):
        """Replace a type's definition (licences already issued keep theirs)."""
        body["fields"] = body.pop("face")
        return type_view(catalogue.update_type(get_session(), code, body, actor=actor()))


@types_blp.route("/<code>/status")
class TypeStatus(MethodView):
    @types_blp.arguments(TypeStatusSchema)
    @types_blp.response(200, LicenceTypeSchema)
    @types_blp.doc(security=BEARER)
    @require_token("licenses:admin")
    def post(self, body, code):
        """Retire a type (no new licences) or bring it back."""
        return type_view(catalogue.set_type_status(get_session(), code, body["status"]))


# -- issuing ------------------------------------------------------------------------------------
@issue_blp.route("")
class Licences(MethodView):
    @issue_blp.arguments(IssueSchema)
    @issue_blp.response(201, LicenceSchema)
    @issue_blp.alt_response(200, schema=LicenceSchema, description="replay of an earlier request (Idempotency-Key)")
    @issue_blp.doc(security=BEARER, parameters=[idempotency.parameter()])
    @require_token("licenses:issue")
    def post(self, body):
        """Issue a licence: checked, sealed by the department's seal, then visible; the holder is told."""
        req = IssueRequest(type_code=body["type_code"], holder_code=body["holder_code"],
                           holder_name=body["holder_name"], fields=body["face"], valid_from=body.get("valid_from"),
                           valid_until=body.get("valid_until"), contact=body["notify"],
                           idempotency_key=idempotency.idempotency_key())
        row, replayed = issuing.issue(get_session(), deps(), issuer(body.get("issuer_code")), req)
        g.licenses_deliver = True
        if replayed:
            return licence_view(row), 200, {"Idempotent-Replayed": "true"}
        return licence_view(row)

    @issue_blp.arguments(LicenceQuerySchema, location="query")
    @issue_blp.response(200, LicenceSchema(many=True))
    @issue_blp.doc(security=BEARER)
    @require_token("licenses:issue")
    def get(self, query):
        """The department's licences, newest first."""
        dept = issuer(request.args.get("issuer_code"))
        statement = select(Licence).where(Licence.issuer_code == dept.code, Licence.status != PENDING)
        if query.get("type_code"):
            statement = statement.where(Licence.type_code == query["type_code"])
        if query.get("status"):
            statement = statement.where(Licence.status == query["status"])
        rows = get_session().scalars(statement.order_by(Licence.created_at.desc()).limit(query["limit"]))
        return [licence_view(r, face=False) for r in rows]


@issue_blp.route("/<licence_id>")
class LicenceItem(MethodView):
    @issue_blp.response(200, LicenceSchema)
    @issue_blp.doc(security=BEARER)
    @require_token("licenses:issue")
    def get(self, licence_id):
        """One of the department's licences, with its face and history."""
        row = lifecycle.issued_by(get_session(), issuer(request.args.get("issuer_code")), licence_id)
        return licence_view(row, history=True)


@issue_blp.route("/<licence_id>/status")
class LicenceStatus(MethodView):
    @issue_blp.arguments(StatusChangeSchema)
    @issue_blp.response(200, LicenceSchema)
    @issue_blp.doc(security=BEARER)
    @require_token("licenses:issue")
    def post(self, body, licence_id):
        """Suspend, resume or revoke (注销 cancelled / 吊销 withdrawn) with a reason."""
        row = lifecycle.change_status(get_session(), issuer(request.args.get("issuer_code")), licence_id,
                                      body["action"], reason=body.get("reason"), kind=body.get("kind"))
        g.licenses_deliver = True
        return licence_view(row, history=True)


@issue_blp.route("/<licence_id>/amend")
class LicenceAmend(MethodView):
    @issue_blp.arguments(AmendSchema)
    @issue_blp.response(201, LicenceSchema)
    @issue_blp.alt_response(200, schema=LicenceSchema, description="replay of an earlier request (Idempotency-Key)")
    @issue_blp.doc(security=BEARER, parameters=[idempotency.parameter()])
    @require_token("licenses:issue")
    def post(self, body, licence_id):
        """Issue the next version (new identifier version, sealed) and supersede this one."""
        row, replayed = lifecycle.amend(get_session(), deps(), issuer(request.args.get("issuer_code")), licence_id,
                                        fields=body["face"], holder_name=body.get("holder_name"),
                                        valid_until=body.get("valid_until"), reason=body["reason"],
                                        idempotency_key=idempotency.idempotency_key())
        g.licenses_deliver = True
        if replayed:
            return licence_view(row), 200, {"Idempotent-Replayed": "true"}
        return licence_view(row, history=True)


# -- bulk ---------------------------------------------------------------------------------------
@bulk_blp.route("")
class BulkJobs(MethodView):
    @bulk_blp.response(201, BulkJobSchema)
    @bulk_blp.doc(security=BEARER, parameters=[
        {"in": "query", "name": "type_code", "required": True, "schema": {"type": "string"}},
        {"in": "query", "name": "format", "schema": {"type": "string", "enum": ["csv", "jsonl"]}}])
    @require_token("licenses:issue")
    def post(self):
        """Upload rows (CSV with a header line, or JSON lines): every row is validated first and
        each bad one reported with its line and reason; nothing is issued until the job is run."""
        text = request.get_data(cache=False, as_text=True)
        fmt = request.args.get("format") or ("jsonl" if "json" in (request.content_type or "") else "csv")
        job = jobs.create_job(get_session(), deps(), issuer(request.args.get("issuer_code")),
                              request.args.get("type_code", ""), text, fmt,
                              max_rows=int(current_app.config["LICENSES_BULK_MAX_ROWS"]))
        return jobs.job_view(get_session(), job)


@bulk_blp.route("/<job_id>")
class BulkJobItem(MethodView):
    @bulk_blp.response(200, BulkJobSchema)
    @bulk_blp.doc(security=BEARER)
    @require_token("licenses:issue")
    def get(self, job_id):
        """Progress, counts and every bad row with its line and reason."""
        session = get_session()
        return jobs.job_view(session, jobs.get_job(session, issuer(request.args.get("issuer_code")), job_id))


@bulk_blp.route("/<job_id>/run")
class BulkJobRun(MethodView):
    @bulk_blp.response(200, BulkJobSchema)
    @bulk_blp.doc(security=BEARER)
    @require_token("licenses:issue")
    def post(self, job_id):
        """Issue the job's valid rows in sealed batches; call again until ``status`` is ``done``.

        Each call works for up to ``LICENSES_BULK_RUN_SECONDS``. Safe to repeat after a crash
        (resumes without issuing or sealing anything twice); 409 ``bulk_job_running`` while
        another runner holds the job."""
        session, config = get_session(), current_app.config
        job = jobs.get_job(session, issuer(request.args.get("issuer_code")), job_id)
        jobs.run_job(session, deps(), job, batch=int(config["LICENSES_BULK_BATCH"]),
                     max_seconds=float(config["LICENSES_BULK_RUN_SECONDS"]),
                     lease_seconds=float(config["LICENSES_BULK_LEASE_SECONDS"]),
                     inflight=int(config["LICENSES_BULK_INFLIGHT"]))
        return jobs.job_view(session, job)
