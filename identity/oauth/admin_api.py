"""Admin REST API for client registration (scope ``identity:admin``)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from common.db import get_session
from common.web.auth import BEARER, require_token
from identity.oauth import clients
from identity.oauth.context import state

blp = Blueprint("oauth_admin", __name__, url_prefix="/admin/clients",
                description="OAuth client registration (scope identity:admin)")


def _admin(view):
    """Bearer token with scope ``identity:admin``, documented as such."""
    return blp.doc(security=BEARER)(require_token("identity:admin")(view))


class ClientInSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    client_id = fields.String(load_default=None)
    client_type = fields.String(load_default="confidential", validate=validate.OneOf(["confidential", "public"]))
    redirect_uris = fields.List(fields.String(), load_default=list)
    post_logout_redirect_uris = fields.List(fields.String(), load_default=list)
    grant_types = fields.List(fields.String(), load_default=lambda: ["authorization_code", "refresh_token"])
    scopes = fields.List(fields.String(), load_default=lambda: ["openid", "profile"])
    audiences = fields.List(fields.String(), load_default=list)
    access_token_lifetime = fields.Integer(load_default=600)
    refresh_token_lifetime = fields.Integer(load_default=30 * 24 * 3600)
    min_acr = fields.Integer(load_default=1)
    id_token_alg = fields.String(load_default="ES256")
    skip_consent = fields.Boolean(load_default=False)


class ClientOutSchema(Schema):
    client_id = fields.String(required=True)
    name = fields.String(required=True)
    client_type = fields.String(required=True)
    token_endpoint_auth_method = fields.String(required=True)
    redirect_uris = fields.List(fields.String())
    post_logout_redirect_uris = fields.List(fields.String())
    grant_types = fields.List(fields.String())
    scopes = fields.List(fields.String())
    audiences = fields.List(fields.String())
    access_token_lifetime = fields.Integer()
    refresh_token_lifetime = fields.Integer()
    min_acr = fields.Integer()
    id_token_alg = fields.String()
    skip_consent = fields.Boolean()
    created_at = fields.DateTime()
    disabled_at = fields.DateTime(allow_none=True)


class ClientCreatedSchema(ClientOutSchema):
    client_secret = fields.String(allow_none=True, metadata={"description": "shown once; only a keyed hash is kept"})


class SecretSchema(Schema):
    client_id = fields.String(required=True)
    client_secret = fields.String(required=True)


@blp.route("/")
class Clients(MethodView):
    @_admin
    @blp.response(200, ClientOutSchema(many=True))
    def get(self):
        """Registered clients."""
        return clients.list_clients(get_session())

    @_admin
    @blp.arguments(ClientInSchema)
    @blp.response(201, ClientCreatedSchema)
    def post(self, body):
        """Register a client; the response carries its secret, which is never shown again."""
        session = get_session()
        client, secret = clients.register_client(session, state().kek, clients.ClientSpec(**body))
        session.commit()
        return {**{c: getattr(client, c) for c in ClientOutSchema().fields}, "client_secret": secret}


@blp.route("/<client_id>")
class ClientResource(MethodView):
    @_admin
    @blp.response(200, ClientOutSchema)
    def get(self, client_id):
        """One client. :raise 404: unknown client."""
        return clients.get_client(get_session(), client_id)

    @_admin
    @blp.response(200, ClientOutSchema)
    def delete(self, client_id):
        """Disable a client and revoke its refresh tokens."""
        session = get_session()
        client = clients.disable_client(session, client_id)
        session.commit()
        return client


@blp.route("/<client_id>/secret")
class ClientSecret(MethodView):
    @_admin
    @blp.response(200, SecretSchema)
    def post(self, client_id):
        """Issue a new secret (the old one stops working); shown once."""
        session = get_session()
        secret = clients.rotate_secret(session, state().kek, client_id)
        session.commit()
        return {"client_id": client_id, "client_secret": secret}
