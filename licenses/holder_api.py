"""REST API for holders (亮证, 授权用证), service windows (核验) and offline verifiers.

* ``licenses:holder`` — a person's token (see :mod:`licenses.holders` for how the person's ID
  number and organisations are resolved): their licences, documents, use records,
  authorisations, offline codes.
* ``licenses:verify`` — a service window verifying an authorisation code online.
* open — the trust list and the status list for offline verification.
"""

from __future__ import annotations

import base64
import io

from flask import Response, current_app, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from common.db import get_session
from common.web.arguments import arguments_or, documented_by
from common.web.auth import BEARER, bearer_token, current_claims, require_token
from common.web.context import current_app_object, request_globals
from common.web.ratelimit import get_limits

from . import authorisations, issuing, offline_keys, verification
from .api import deps, licence_view, node
from .authorisations import Limits
from .holders import Holder
from .schemas import (
    CODE_MAX,
    CODE_MIN,
    AuthorisationSchema,
    AuthoriseSchema,
    LicenceSchema,
    OfflineCodeSchema,
    UseRecordSchema,
    VerifyRequestSchema,
    VerifyResultSchema,
)

holder_blp = Blueprint("holder", __name__, url_prefix="/my", description="Holders: licences, authorisations")
verify_blp = Blueprint("verify", __name__, url_prefix="/", description="Verification (核验), online and offline")


def holder() -> Holder:
    return resolve_holder(str(current_claims()["sub"]), bearer_token())


def resolve_holder(sub: str, access_token: str) -> Holder:
    """The person ``access_token`` was issued to, as a holder (the API's bearer token, or the
    holders' pages' signed-in token). :raise NotAHolder: :raise DirectoryUnavailable:"""
    person = node()["directory"].resolve(sub, access_token)
    issuing.link_holder(get_session(), deps().cipher, person.sub, person.codes())
    return person


def own_licence_view(row) -> dict:
    """:func:`~licenses.api.licence_view` for the licence's own holder: the holder unmasked."""
    data = licence_view(row)
    data["holder"] = authorisations.own_holder(deps(), row)
    return data


def document_download(row) -> Response:
    return Response(issuing.document_of(deps(), row), mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="{row.face_number}.json"'})


def signature_download(row) -> Response:
    return Response(base64.b64decode(row.signature_b64 or ""), mimetype="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{row.face_number}.ses"'})


def limits() -> Limits:
    config = current_app.config
    return Limits(int(config["LICENSES_AUTH_MIN_MINUTES"]), int(config["LICENSES_AUTH_MAX_MINUTES"]),
                  int(config["LICENSES_AUTH_MAX_USES"]))


def authorisation_view(auth) -> dict:
    data = {c: getattr(auth, c) for c in ("id", "code", "licence_id", "purpose", "audience", "expires_at",
                                          "max_uses", "uses", "status", "created_at", "revoked_at",
                                          "granted_by_name", "revoked_by_name")}
    # Every app acting for the organisation reads this: it gets colleagues' names, not their
    # identity subjects (a stable identifier of each person, which no page needs: a name, and
    # whether it was the caller, say 授权人/撤销人 as the holder's pages do). Data minimisation.
    me = str(current_claims()["sub"])
    data["granted_by_me"] = auth.granted_by == me
    data["revoked_by_me"] = auth.revoked_by is not None and auth.revoked_by == me
    data["face"] = auth.fields
    data["qr_url"] = url_for("holder.AuthorisationQr", authorisation_id=auth.id)
    return data


def png(data: str) -> Response:
    import qrcode

    image = qrcode.make(data, error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=6, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Response(buffer.getvalue(), mimetype="image/png", headers={"Cache-Control": "no-store"})


@holder_blp.route("/licences")
class MyLicences(MethodView):
    @holder_blp.response(200, LicenceSchema(many=True))
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def get(self):
        """The licences of the person and of the organisations they represent or act for."""
        return [own_licence_view(r) for r in authorisations.holders_licences(get_session(), deps(), holder())]


@holder_blp.route("/licences/<licence_id>")
class MyLicence(MethodView):
    @holder_blp.response(200, LicenceSchema)
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def get(self, licence_id):
        """One licence with its face (照面信息)."""
        return own_licence_view(authorisations.holders_licence(get_session(), deps(), holder(), licence_id))


@holder_blp.route("/licences/<licence_id>/document")
class MyDocument(MethodView):
    @holder_blp.response(200, content_type="application/json")
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def get(self, licence_id):
        """The sealed canonical document (RFC 8785 JSON; its SM3 is the signature's dataHash)."""
        return document_download(authorisations.holders_licence(get_session(), deps(), holder(), licence_id))


@holder_blp.route("/licences/<licence_id>/signature")
class MySignature(MethodView):
    @holder_blp.response(200, content_type="application/octet-stream")
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def get(self, licence_id):
        """The seal's DER ``SES_Signature`` (GB/T 38540) over the document."""
        return signature_download(authorisations.holders_licence(get_session(), deps(), holder(), licence_id))


@holder_blp.route("/licences/<licence_id>/uses")
class MyUses(MethodView):
    @holder_blp.response(200, UseRecordSchema(many=True))
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def get(self, licence_id):
        """Every verification of the licence (用证记录): who, when, purpose, outcome."""
        session = get_session()
        row = authorisations.holders_licence(session, deps(), holder(), licence_id)
        return authorisations.use_records(session, row.id)


@holder_blp.route("/licences/<licence_id>/authorisations")
class MyLicenceAuthorisations(MethodView):
    @holder_blp.response(200, AuthorisationSchema(many=True))
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def get(self, licence_id):
        session = get_session()
        row = authorisations.holders_licence(session, deps(), holder(), licence_id)
        return [authorisation_view(a) for a in authorisations.list_for(session, row.id)]


@holder_blp.route("/authorisations")
class MyAuthorisations(MethodView):
    @holder_blp.arguments(AuthoriseSchema)
    @holder_blp.response(201, AuthorisationSchema)
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def post(self, body):
        """Authorise one use: fields, purpose, audience, minutes, uses → a short code and a QR code."""
        auth = authorisations.create(get_session(), deps(), holder(), body["licence_id"], fields=body["face"],
                                     purpose=body["purpose"], audience=body["audience"], minutes=body["minutes"],
                                     max_uses=body["max_uses"], limits=limits())
        return authorisation_view(auth)


@holder_blp.route("/authorisations/<authorisation_id>")
class MyAuthorisation(MethodView):
    @holder_blp.response(200, AuthorisationSchema)
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def delete(self, authorisation_id):
        """Revoke an authorisation (idempotent)."""
        return authorisation_view(authorisations.revoke(get_session(), deps(), holder(), authorisation_id))


@holder_blp.route("/authorisations/<authorisation_id>/qr.png")
class AuthorisationQr(MethodView):
    @holder_blp.response(200, content_type="image/png")
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def get(self, authorisation_id):
        """The authorisation's short code as a QR code."""
        return png(authorisations.get_own(get_session(), deps(), holder(), authorisation_id).code)


@holder_blp.route("/authorisations/<authorisation_id>/offline-code")
class MyOfflineCode(MethodView):
    @holder_blp.response(201, OfflineCodeSchema)
    @holder_blp.doc(security=BEARER)
    @require_token("licenses:holder")
    def post(self, authorisation_id):
        """A signed offline code (``XL1:…``) of what the authorisation allows, short-lived."""
        config = current_app.config
        code, expires = offline_keys.code_for(get_session(), deps(), node()["kek"], holder(), authorisation_id,
                                              issuer=f"{config['PUBLIC_BASE_URL'].rstrip('/')}/licenses",
                                              lifetime=int(config["LICENSES_OFFLINE_CODE_SECONDS"]))
        return {"code": code, "expires_at": expires}


def plain_verify_request(body: object) -> dict | None:
    """``body`` when :class:`~licenses.schemas.VerifyRequestSchema` accepts it as it is: a JSON
    object whose only member is a ``code`` string within the schema's length bounds and without
    a NUL (which the parser refuses: PostgreSQL cannot hold one); ``None`` for anything else."""
    if type(body) is dict and len(body) == 1:
        code = body.get("code")
        if type(code) is str and CODE_MIN <= len(code) <= CODE_MAX and "\x00" not in code:
            return body
    return None


@verify_blp.route("/verify")
class Verify(MethodView):
    @arguments_or(verify_blp, VerifyRequestSchema, plain_verify_request)
    @documented_by(verify_blp.response(200, VerifyResultSchema), verify_blp.doc(security=BEARER))
    @require_token("licenses:verify")
    def post(self, body):
        """Verify an authorisation code: authorisation, licence status and validity, document, seal
        signature; records the use; returns only the authorised fields. Refusals are problems with
        ``checks`` and are recorded too."""
        claims = current_claims()
        # Codes carry 50 bits, and guessing is also bounded per window.
        get_limits().check(f"licenses:verify:{claims.get('client_id')}:{claims.get('sub')}", "600/minute")
        app, state = current_app_object(), request_globals()
        store = node()["stores"].open(get_session)
        try:
            result = verification.verify_code(
                store, deps(), verification.verifier_from_claims(claims, app.config), body["code"],
                request_id=state.get("request_id"))
        finally:
            store.close()
        # The answer is already what VerifyResultSchema would dump (its members, face as "fields";
        # tests/licenses/test_verification.py checks it), so it is rendered without the dump.
        return app.json.response(result)


@verify_blp.route("/offline/trust-list")
class TrustList(MethodView):
    @verify_blp.response(200, content_type="application/json")
    def get(self):
        """The node's offline-code keys (save it for ``xsn licenses verify-qr``)."""
        config = current_app.config
        return offline_keys.trust_list(get_session(), node()["kek"],
                                       f"{config['PUBLIC_BASE_URL'].rstrip('/')}/licenses")


@verify_blp.route("/offline/status-list")
class StatusList(MethodView):
    @verify_blp.response(200, content_type="application/json")
    def get(self):
        """The signed status bitstring: bit set = the licence is not valid (revoked, suspended, ...)."""
        return offline_keys.status_list(get_session(), node()["kek"],
                                        int(current_app.config["LICENSES_STATUS_LIST_BITS"]))
