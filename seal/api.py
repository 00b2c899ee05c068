"""REST API of the seal node: thin views over the domain modules (:mod:`seal.seals`,
:mod:`seal.grants`, :mod:`seal.signing`, :mod:`seal.verification`, :mod:`seal.certificates`).

Authorisation (identity's access tokens, audience ``xsn:seal``):

* ``seal:admin`` — seal management: register, list, suspend/resume/revoke, pictures, grants.
* ``seal:sign`` — signing, *and* an explicit grant of the seal to the token's ``client_id``
  (service clients) or ``sub`` (staff); every other caller is refused.
* open — verification, the seal picture and ``SESeal`` export (both are embedded in every
  signature anyway), the CA certificate and certificate status.
"""

from __future__ import annotations

import base64
from datetime import datetime

import orjson
from flask import Response, current_app, g, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from common.crypto.gm import sm3
from common.crypto.keystore import load_kek
from common.db import get_db, get_session
from common.errors import NotFound
from common.web.auth import BEARER, current_claims, require_token, scopes_of
from common.web.extensions import app_singleton
from seal import certificates, grants, seals, signing, verification
from seal.asn1 import MAX_DER_SIZE
from seal.images import MAX_IMAGE_BYTES, InvalidImage
from seal.schemas import (
    CertificateStatusSchema,
    GrantCreateSchema,
    GrantSchema,
    ImageSchema,
    SealCreateSchema,
    SealEventSchema,
    SealQuerySchema,
    SealSchema,
    SignBatchRequestSchema,
    SignBatchResponseSchema,
    SignRequestSchema,
    SignResponseSchema,
    StatusChangeSchema,
    VerifyRequestSchema,
    VerifyResponseSchema,
)
from seal.ses import DEFAULT_PROPERTY_INFO
from seal.signature_writer import SignatureWriter, group_writer
from seal.uploads import DocumentTooLarge, decode_base64

blp = Blueprint("seals", __name__, url_prefix="/seals", description="Electronic seals (电子印章)")
sign_blp = Blueprint("signing", __name__, url_prefix="/", description="Signing and verification (GB/T 38540)")
ca_blp = Blueprint("ca", __name__, url_prefix="/ca", description="The node CA: seal maker and signer certificates")


def _kek() -> bytes:
    kek = current_app.extensions.get("seal_kek")
    if kek is None:
        kek = current_app.extensions["seal_kek"] = load_kek(current_app.config)
    return kek


def _actor() -> grants.Actor:
    claims = current_claims()
    return grants.Actor(sub=str(claims["sub"]), client_id=claims.get("client_id"),
                         scopes=frozenset(scopes_of(claims)))


def _seal_dict(seal, usage: int | None = None) -> dict:
    data = {column: getattr(seal, column) for column in (
        "id", "es_id", "org_code", "org_name", "kind", "name", "status", "status_reason", "status_changed_at",
        "valid_start", "valid_end", "image_width", "image_height", "image_generated", "signer_serial",
        "created_at")}
    data["image_url"] = url_for("seals.SealImage", seal_id=seal.id)
    data["eseal_url"] = url_for("seals.SealDer", seal_id=seal.id)
    if usage is not None:
        data["usage_count"] = usage
    return data


def _png(value: str) -> bytes:
    try:
        return decode_base64(value, "image_base64", limit=MAX_IMAGE_BYTES)
    except DocumentTooLarge as exc:
        raise InvalidImage(exc.detail, code="image_too_large") from exc


@blp.route("")
class Seals(MethodView):
    @blp.arguments(SealQuerySchema, location="query")
    @blp.response(200, SealSchema(many=True))
    @blp.doc(security=BEARER)
    @require_token("seal:admin")
    def get(self, query):
        """List seals (by organisation, by status), with usage counts."""
        session = get_session()
        found = seals.list_seals(session, org_code=query.get("org_code"), status=query.get("status"))
        counts = seals.usage_counts(session, [s.id for s in found])
        return [_seal_dict(s, counts[s.id]) for s in found]

    @blp.arguments(SealCreateSchema)
    @blp.response(201, SealSchema)
    @blp.doc(security=BEARER)
    @require_token("seal:admin")
    def post(self, body):
        """Register a seal: SM2 key, signer certificate, picture, SESeal signed by the maker."""
        image = _png(body["image_base64"]) if body.get("image_base64") else None
        seal = seals.create_seal(get_session(), _kek(), org_code=body["org_code"], org_name=body["org_name"],
                                 kind=body["kind"], name=body.get("name"), image_png=image, years=body["years"],
                                 actor=_actor().sub, font_path=str(current_app.config["SEAL_FONT_PATH"] or ""))
        return _seal_dict(seal, 0)


@blp.route("/granted")
class GrantedSeals(MethodView):
    @blp.response(200, SealSchema(many=True))
    @blp.doc(security=BEARER)
    @require_token("seal:sign")
    def get(self):
        """The seals the caller may sign with (granted to its client_id or its subject)."""
        return [_seal_dict(s) for s in grants.granted_seals(get_session(), _actor())]


@blp.route("/<seal_id>")
class SealItem(MethodView):
    @blp.response(200, SealSchema)
    @blp.doc(security=BEARER)
    @require_token("seal:admin")
    def get(self, seal_id):
        session = get_session()
        seal = seals.get_seal(session, seal_id)
        return _seal_dict(seal, seals.usage_counts(session, [seal.id])[seal.id])


@blp.route("/<seal_id>/status")
class SealStatus(MethodView):
    @blp.arguments(StatusChangeSchema)
    @blp.response(200, SealSchema)
    @blp.doc(security=BEARER)
    @require_token("seal:admin")
    def post(self, body, seal_id):
        """Suspend, resume or revoke (revocation is final and revokes the signer certificate)."""
        seal = seals.change_status(get_session(), seal_id, body["action"], reason=body.get("reason"),
                                   actor=_actor().sub)
        return _seal_dict(seal)


@blp.route("/<seal_id>/history")
class SealHistory(MethodView):
    @blp.response(200, SealEventSchema(many=True))
    @blp.doc(security=BEARER)
    @require_token("seal:admin")
    def get(self, seal_id):
        session = get_session()
        seals.get_seal(session, seal_id)
        return seals.history(session, seal_id)


@blp.route("/<seal_id>/image")
class SealImage(MethodView):
    @blp.response(200, content_type="image/png")
    def get(self, seal_id):
        """The seal picture (PNG). Public: it is inside every signature made with the seal."""
        seal = seals.get_seal(get_session(), seal_id)
        return Response(seal.image_png, mimetype="image/png",
                        headers={"Cache-Control": "public, max-age=300", "ETag": sm3(seal.image_png).hex()[:32]})

    @blp.arguments(ImageSchema)
    @blp.response(200, SealSchema)
    @blp.doc(security=BEARER)
    @require_token("seal:admin")
    def put(self, body, seal_id):
        """Replace the picture (PNG only, ≤ 256 KiB, 100–1000 px); the SESeal is re-made."""
        seal = seals.replace_image(get_session(), _kek(), seal_id, _png(body["image_base64"]), actor=_actor().sub)
        return _seal_dict(seal)


@blp.route("/<seal_id>/eseal")
class SealDer(MethodView):
    @blp.response(200, content_type="application/octet-stream")
    def get(self, seal_id):
        """The seal as DER ``SESeal`` (GB/T 38540 v4)."""
        seal = seals.get_seal(get_session(), seal_id)
        return Response(seal.eseal_der, mimetype="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{seal.es_id}.seal"'})


@blp.route("/<seal_id>/grants")
class SealGrants(MethodView):
    @blp.response(200, GrantSchema(many=True))
    @blp.doc(security=BEARER)
    @require_token("seal:admin")
    def get(self, seal_id):
        session = get_session()
        seals.get_seal(session, seal_id)
        return grants.list_grants(session, seal_id)

    @blp.arguments(GrantCreateSchema)
    @blp.response(201, GrantSchema)
    @blp.doc(security=BEARER)
    @require_token("seal:admin")
    def post(self, body, seal_id):
        """Allow an OAuth client or a staff subject to sign with this seal."""
        return grants.add_grant(get_session(), seal_id, body["grantee_type"], body["grantee"], actor=_actor().sub)


@blp.route("/<seal_id>/grants/<int:grant_id>")
class SealGrant(MethodView):
    @blp.response(204)
    @blp.doc(security=BEARER)
    @require_token("seal:admin")
    def delete(self, seal_id, grant_id):
        grants.remove_grant(get_session(), seal_id, grant_id, actor=_actor().sub)


def _digest_of(body: dict) -> bytes:
    if body.get("digest"):
        return bytes.fromhex(body["digest"])
    limit = int(current_app.config["SEAL_MAX_DOCUMENT_BYTES"])
    return sm3(decode_base64(body["document_base64"], "document_base64", limit=limit))


def _signature_log() -> signing.SignatureLog:
    """Where signatures are logged (the database log; see ``seal._init``)."""
    return current_app.extensions["seal_signature_log"]


def _signature_writer() -> SignatureWriter | None:
    """The process's grouped writer when this server runs requests in threads (gunicorn gthread:
    concurrent signers share a commit and the log head's lock); a server with one request at a
    time per process (a sync worker, the test client) writes in the request's own transaction."""
    if not request.environ.get("wsgi.multithread"):
        return None
    return app_singleton("seal_signature_writer", lambda: group_writer(get_db().session, _signature_log()))


def _signature_payload(row, seal_code: str, encoded: str | None = None) -> dict:
    """``encoded``: the DER's base64 when the signing path made it (``ses.SigningMaterial``)."""
    return {"signature_id": row.id, "seal_id": row.seal_id, "seal_code": seal_code, "signed_at": row.signed_at,
            "document_digest": row.document_digest, "signature_digest": row.signature_digest,
            "signature_base64": encoded or base64.b64encode(row.signature_der).decode(), "log_index": row.log_index}


def _signing_response(payload: dict, replayed: bool) -> Response:
    """A signing answer, serialised here rather than by flask-smorest's schema dump and Flask's
    JSON encoder: a batch answer is ~2.4 MB (each signature carries the seal and its picture),
    and the two cost a tenth of a batch signature's CPU (issue 9). The body is what the
    documented schema (``SignResponseSchema``) dumps, keys sorted as Flask sorts them; times
    are ISO 8601 as marshmallow writes them."""
    body = orjson.dumps(payload, default=_iso, option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME)
    if replayed:
        return Response(body, status=200, mimetype="application/json", headers={"Idempotent-Replayed": "true"})
    return Response(body, status=201, mimetype="application/json")


def _iso(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@blp.route("/<seal_id>/sign")
class SealSign(MethodView):
    @blp.arguments(SignRequestSchema)
    @blp.response(201, SignResponseSchema)
    @blp.alt_response(200, schema=SignResponseSchema, description="replay of an earlier request (Idempotency-Key)")
    @blp.doc(security=BEARER, parameters=[{"in": "header", "name": "Idempotency-Key", "required": False,
                                              "schema": {"type": "string", "maxLength": 255}}])
    @require_token("seal:sign")
    def post(self, body, seal_id):
        """Sign a document (or its SM3 digest): a GB/T 38540 SES_Signature, logged."""
        result = signing.sign(get_session(), _kek(), seal_id, actor=_actor(), digest=_digest_of(body),
                              property_info=body.get("property_info") or DEFAULT_PROPERTY_INFO,
                              idempotency_key=request.headers.get("Idempotency-Key"),
                              request_id=g.get("request_id"), log=_signature_log(),
                              writer=_signature_writer())
        row = result.signature
        return _signing_response(_signature_payload(row, result.seal_code or seals.seal_code(get_session(),
                                                                                              row.seal_id),
                                                    result.signature_base64),
                                 result.replayed)


@blp.route("/<seal_id>/sign-batch")
class SealSignBatch(MethodView):
    @blp.arguments(SignBatchRequestSchema)
    @blp.response(201, SignBatchResponseSchema)
    @blp.alt_response(200, schema=SignBatchResponseSchema,
                      description="replay of an earlier batch (Idempotency-Key): the same signatures")
    @blp.doc(security=BEARER, parameters=[{"in": "header", "name": "Idempotency-Key", "required": False,
                                              "schema": {"type": "string", "maxLength": 255}}])
    @require_token("seal:sign")
    def post(self, body, seal_id):
        """Sign up to SEAL_SIGN_BATCH_MAX digests (100) in one request: all or none, in order.

        Each digest becomes its own SES_Signature and its own log entry, in request order, with
        the checks of a single signature. One Idempotency-Key names the whole batch: a replay
        answers 200 with the same signatures; the same key with other items is refused (422).
        """
        items = [(bytes.fromhex(item["digest"]), item.get("property_info") or DEFAULT_PROPERTY_INFO)
                 for item in body["items"]]
        result = signing.sign_batch(get_session(), _kek(), seal_id, actor=_actor(), items=items,
                                    max_items=int(current_app.config["SEAL_SIGN_BATCH_MAX"]),
                                    idempotency_key=request.headers.get("Idempotency-Key"),
                                    request_id=g.get("request_id"), log=_signature_log())
        code = result.seal_code or seals.seal_code(get_session(), seal_id)
        encoded = result.signatures_base64 or [None] * len(result.signatures)
        return _signing_response({"signatures": [_signature_payload(row, code, text)
                                                 for row, text in zip(result.signatures, encoded, strict=True)]},
                                 result.replayed)


@sign_blp.route("/signatures/<signature_id>")
class SignatureItem(MethodView):
    @sign_blp.response(200, SignResponseSchema)
    @sign_blp.doc(security=BEARER)
    @require_token("seal:sign")
    def get(self, signature_id):
        """A signature this caller made (same client or subject)."""
        session = get_session()
        row = signing.get_signature(session, signature_id)
        actor = _actor()
        if row.signer != actor.sub and (actor.client_id is None or row.client_id != actor.client_id):
            raise NotFound(f"no signature {signature_id}", code="signature_not_found")
        return _signature_payload(row, seals.seal_code(session, row.seal_id))


@sign_blp.route("/verify")
class Verify(MethodView):
    @sign_blp.arguments(VerifyRequestSchema)
    @sign_blp.response(200, VerifyResponseSchema)
    @sign_blp.alt_response(422, description="the signature is not an acceptable SES_Signature DER")
    def post(self, body):
        """Verify an SES_Signature: all five checks of GB/T 38540, each reported separately."""
        der = decode_base64(body["signature_base64"], "signature_base64", limit=2 * MAX_DER_SIZE)
        digest = _digest_of(body) if (body.get("digest") or body.get("document_base64")) else None
        return verification.verify(get_session(), der, document_digest=digest, end_reads=True).to_dict()


def _maker(session):
    return certificates.maker_certificate(session, _kek())


@ca_blp.route("/certificate")
class CACertificate(MethodView):
    @ca_blp.response(200, content_type="application/pkix-cert")
    def get(self):
        """The seal maker (root CA) certificate: DER, or PEM with ``?format=pem``."""
        row = _maker(get_session())
        if request.args.get("format") == "pem":
            from asn1crypto import pem

            return Response(pem.armor("CERTIFICATE", row.der), mimetype="application/x-pem-file")
        return Response(row.der, mimetype="application/pkix-cert")


@ca_blp.route("/certificates/<serial>")
class CertificateStatus(MethodView):
    @ca_blp.response(200, CertificateStatusSchema)
    def get(self, serial):
        """Status of a certificate issued by this node (active or revoked, with time and reason)."""
        return certificates.certificate_status(get_session(), serial)


@ca_blp.route("/certificates/<serial>/der")
class CertificateDer(MethodView):
    @ca_blp.response(200, content_type="application/pkix-cert")
    def get(self, serial):
        row = certificates.certificate_status(get_session(), serial)
        return Response(row.der, mimetype="application/pkix-cert")
