"""Client-credentials tokens: the grant's rule, and a direct path for a well-formed request.

The rule (:func:`scope_and_audience`) is the one place that decides what a client may get; the
Authlib grant (:class:`identity.oauth.grants.ClientCredentialsGrant`) and the direct path both
call it.

The direct path (issue 9): machine clients ask for a token every few minutes each, and Authlib's
request machinery (its request object with the full request URL, the grant object and its
extensions, the authentication loop) cost as much as the rest of a token together. For a
request that authenticates and is granted, :func:`issue` does what Authlib's
``ClientCredentialsGrant`` does, in the same order and with the same checks, and returns the
same body. Anything else (no or bad credentials, an authentication method the client is not
registered for, a grant or scope it may not use, a bad audience) returns ``None``, and the
caller hands the request to Authlib, which answers it exactly as before: every error response
still comes from Authlib. Flask-free: the caller passes the header, the form and the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from identity.oauth.adapters import ClientDirectory, ClientRecord
from identity.oauth.clients import check_secret
from identity.oauth.issuing import issue_tokens
from identity.oauth.kernel import PERSON_SCOPES, SERVICE_DISCLOSURE_SCOPES

GRANT_TYPE = "client_credentials"
BASIC, POST = "client_secret_basic", "client_secret_post"


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource (audience) is not allowed for the client."""

    error = "invalid_target"


def scope_and_audience(client: ClientRecord, requested_scope: str | None,
                       targets: list[str]) -> tuple[str, list[str]]:
    """The scope and audience of a client's own token.

    A client gets the scopes it asks for (all it may have when it asks for none), never a
    person's scopes except those a service may disclose; and the audiences it names with
    ``resource`` / ``audience`` (RFC 8707), else all of its audiences.

    :raise InvalidScopeError: a scope the client may not have.
    :raise InvalidTargetError: an audience the client may not ask for.
    """
    allowed = [s for s in client.scopes if s not in PERSON_SCOPES or s in SERVICE_DISCLOSURE_SCOPES]
    requested = scope_to_list(requested_scope or "") or []
    if not set(requested) <= set(allowed):
        raise InvalidScopeError("The client may not request these scopes.")
    if targets and not set(targets) <= set(client.audiences):
        raise InvalidTargetError(description="The client may not ask for this audience.")
    audience = list(dict.fromkeys(targets)) or list(client.audiences) or ["xsn:identity"]
    return " ".join(requested or allowed), audience


def _authenticated(directory: ClientDirectory, secret_key: bytes, authorization: str | None,
                   form: Mapping[str, str]) -> ClientRecord | None:
    """The client, when it authenticates the way Authlib's token endpoint would accept first:
    HTTP Basic (its own header parsing), else ``client_id`` / ``client_secret`` in the form;
    in either case only with the method the client is registered for."""
    client_id, secret = extract_basic_authorization({"Authorization": authorization} if authorization else {})
    method = BASIC
    if not (client_id and secret):
        client_id, secret, method = form.get("client_id"), form.get("client_secret"), POST
        if not (client_id and secret):
            return None
    client = directory.get(client_id)
    if client is None or client.token_endpoint_auth_method != method \
            or not check_secret(secret_key, client.secret_hash, secret):
        return None
    return client


def issue(*, directory: ClientDirectory, secret_key: bytes, keys: Any, session: Callable[[], Any], issuer: str,
          authorization: str | None, form: Mapping[str, str], resources: list[str],
          scopes_supported: list[str] | None) -> tuple[ClientRecord, dict[str, Any]] | None:
    """The client and the token response body of a valid client-credentials request, else ``None``
    (the caller then lets Authlib answer).

    ``form`` is the request body's parameters, and the caller passes only a request without a
    query string (Authlib reads both); ``resources`` are the form's ``resource`` and
    ``audience`` values in order; ``scopes_supported`` is Authlib's server-wide scope list
    (``OAUTH2_SCOPES_SUPPORTED``; none: any).
    """
    if form.get("grant_type") != GRANT_TYPE:
        return None
    client = _authenticated(directory, secret_key, authorization, form)
    if client is None or GRANT_TYPE not in client.grant_types:
        return None
    requested = form.get("scope")
    if requested and scopes_supported and not set(scopes_supported).issuperset(scope_to_list(requested)):
        return None
    try:
        scope, audience = scope_and_audience(client, requested, resources)
    except OAuth2Error:
        return None
    token, _claims = issue_tokens(session, keys, issuer=issuer, client=client, subject=client.client_id,
                                  person_id=None, scope=scope, audience=audience, ctx=None)
    return client, token
