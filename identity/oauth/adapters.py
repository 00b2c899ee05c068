"""Authlib's model interfaces over our rows: clients, codes, refresh and access tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, scope_to_list
from authlib.oidc.core import AuthorizationCodeMixin
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from common.db import utcnow
from identity.claims import acr_for
from identity.oauth.clients import check_secret
from identity.oauth.models import AuthorizationCode, OAuthClient, RefreshToken


@dataclass(frozen=True)
class ClientRecord:
    """A client's registration as read for one request: the columns of :class:`OAuthClient`,
    without the ORM's identity map and change tracking (half the cost of a token request
    went to loading the row as an ORM object, which nothing here modifies)."""

    client_id: str
    name: str
    client_type: str
    secret_hash: str | None
    token_endpoint_auth_method: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    scopes: list[str]
    audiences: list[str]
    access_token_lifetime: int
    refresh_token_lifetime: int
    min_acr: int
    id_token_alg: str
    skip_consent: bool
    created_at: datetime
    disabled_at: datetime | None


_CLIENTS = OAuthClient.__table__
# A Core statement on the session's connection: no ORM compilation or loading per request.
_CLIENT_BY_ID = select(*[_CLIENTS.c[name] for name in ClientRecord.__dataclass_fields__]).where(
    _CLIENTS.c.client_id == bindparam("client_id"))


def load_client(session: Session, client_id: str) -> ClientRecord | None:
    """The enabled client ``client_id``, read fresh (a disabled client or a new secret takes
    effect at the next request), or ``None``."""
    row = session.connection().execute(_CLIENT_BY_ID, {"client_id": client_id}).first()
    if row is None or row.disabled_at is not None:
        return None
    return ClientRecord(**row._asdict())


class ClientDirectory:
    """Clients for Authlib's hooks: the row is read fresh on every request, the record is not
    rebuilt unless the row changed.

    Reading the row through an ORM session and SQLAlchemy's result processing (JSON and
    datetime columns) cost about a third of a client-credentials token (issue 9). Here the same
    statement, compiled once for the engine's dialect, runs on a pooled DBAPI connection, and
    the raw row (column values as the driver returns them) is compared with the one the cached
    record was built from: equal rows give the same record, and any change to the row (a new
    secret, disabling, new scopes from a re-seed) is seen at the very next request, in every
    worker, as before. Only a changed or unknown row goes through :func:`load_client`.
    """

    _MAX = 1024  # distinct clients remembered; a full directory starts again (no unbounded growth)

    def __init__(self, engine: Any, session_factory: Any) -> None:
        self.engine = engine
        self.session_factory = session_factory
        compiled = _CLIENT_BY_ID.compile(dialect=engine.dialect)
        self._sql = str(compiled)
        self._positional = compiled.positional
        self._records: dict[str, tuple[tuple, ClientRecord]] = {}

    def _raw_row(self, client_id: str) -> tuple | None:
        params: Any = (client_id,) if self._positional else {"client_id": client_id}
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self._sql, params)
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool, which ends the read transaction
        return tuple(row) if row is not None else None

    def get(self, client_id: str) -> ClientRecord | None:
        """The enabled client ``client_id`` as its row is now, or ``None``."""
        raw = self._raw_row(client_id)
        if raw is None:
            return None
        cached = self._records.get(client_id)
        if cached is not None and cached[0] == raw:
            return cached[1]
        with self.session_factory() as session:
            record = load_client(session, client_id)
        if record is None:  # disabled (or gone since): nothing to remember
            self._records.pop(client_id, None)
            return None
        if len(self._records) >= self._MAX:
            self._records = {}
        self._records[client_id] = (raw, record)
        return record


class ClientAdapter(ClientMixin):
    def __init__(self, model: ClientRecord, secret_key: bytes) -> None:
        self.model = model
        self._secret_key = secret_key

    @property
    def client_id(self) -> str:
        return self.model.client_id

    def get_client_id(self):
        return self.model.client_id

    def get_default_redirect_uri(self):
        return None  # redirect_uri is required on every request (exact match only)

    def get_allowed_scope(self, scope):
        allowed = [s for s in scope_to_list(scope or "") if s in self.model.scopes]
        return " ".join(dict.fromkeys(allowed)) or None

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.model.redirect_uris  # exact string match, no prefix or pattern

    def check_client_secret(self, client_secret):
        return check_secret(self._secret_key, self.model.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.model.token_endpoint_auth_method

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.model.grant_types

    def check_grant_type(self, grant_type):
        return grant_type in self.model.grant_types


class CodeRecord(AuthorizationCodeMixin):
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row

    def get_redirect_uri(self):
        return self.row.redirect_uri

    def get_scope(self):
        return self.row.scope

    def get_nonce(self):
        return self.row.nonce

    def get_auth_time(self):
        return int(self.row.auth_time.timestamp())

    def get_acr(self):
        return acr_for(self.row.acr)

    def get_amr(self):
        return self.row.amr.split()


class RefreshRecord(TokenMixin):
    kind = "refresh_token"

    def __init__(self, row: RefreshToken, issuer: str) -> None:
        self.row = row
        self.issuer = issuer

    def check_client(self, client):
        return self.row.client_id == client.get_client_id()

    def get_scope(self):
        return self.row.scope

    def get_expires_in(self):
        return max(0, int((self.row.expires_at - utcnow()).total_seconds()))

    def is_expired(self):
        return self.row.expires_at <= utcnow()

    def is_revoked(self):
        return self.row.revoked_at is not None or self.row.used_at is not None

    def introspection(self) -> dict[str, Any]:
        return {"active": True, "token_type": "refresh_token", "client_id": self.row.client_id,
                "sub": self.row.person_id, "scope": self.row.scope, "iss": self.issuer,
                "exp": int(self.row.expires_at.timestamp()), "iat": int(self.row.issued_at.timestamp())}


class AccessRecord(TokenMixin):
    kind = "access_token"

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims

    def check_client(self, client):
        return self.claims.get("client_id") == client.get_client_id()

    def get_scope(self):
        return self.claims.get("scope", "")

    def get_expires_in(self):
        return max(0, int(self.claims["exp"] - utcnow().timestamp()))

    def is_expired(self):
        return self.claims["exp"] <= utcnow().timestamp()

    def is_revoked(self):
        return False  # the verifier already refused revoked ones

    def introspection(self) -> dict[str, Any]:
        keep = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "acr", "auth_time", "sid")
        return {"active": True, "token_type": "Bearer", **{k: self.claims[k] for k in keep if k in self.claims}}
