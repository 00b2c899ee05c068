"""RP-initiated logout rules (OpenID Connect RP-Initiated Logout 1.0). Flask-free.

With a valid ``id_token_hint`` naming the signed-in person the logout happens at once.
Without one anybody could have sent the browser here (a cross-site link or image), so the
person is asked first (§2): a CSRF-protected form posted back with ``confirm=yes``. The
browser returns to ``post_logout_redirect_uri`` only if it is registered (exactly) for the
identified client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from identity.oauth.models import OAuthClient, RefreshToken
from identity.oauth.refresh_tokens import revoke_families

ASK, DECLINED, SIGN_OUT = "ask", "declined", "sign_out"


class LogoutRefused(Exception):
    """The request is invalid (400 ``invalid_request``)."""


@dataclass(frozen=True)
class LogoutRequest:
    hint_given: bool
    hint_claims: dict[str, Any] | None  # the verified id_token_hint (signature and issuer), if any
    client_id: str | None  # the ``client_id`` parameter
    target: str | None  # ``post_logout_redirect_uri``
    signed_in_person: str | None  # the browser's current login, if any
    confirm: str | None  # the confirmation form's answer (POST only)


@dataclass(frozen=True)
class LogoutDecision:
    action: str  # ASK (show the confirmation page), DECLINED (stay signed in), SIGN_OUT
    client: OAuthClient | None
    end_login: bool  # whether the browser's login ends
    confirmed_by_form: bool  # the answer came from our form: the caller checks its CSRF token


def decide_logout(session: Session, req: LogoutRequest) -> LogoutDecision:
    """:raise LogoutRefused: a hint not issued here, a client_id contradicting it, or an
    unregistered ``post_logout_redirect_uri``."""
    claims = req.hint_claims
    if req.hint_given and claims is None:
        raise LogoutRefused("id_token_hint is not an ID token issued here")
    client_id = req.client_id or (claims or {}).get("azp") or (claims or {}).get("aud")
    if claims and req.client_id and req.client_id != claims.get("aud"):
        raise LogoutRefused("client_id does not match the id_token_hint")
    client = session.get(OAuthClient, client_id) if isinstance(client_id, str) else None
    if req.target and (client is None or req.target not in client.post_logout_redirect_uris):
        raise LogoutRefused("post_logout_redirect_uri is not registered for the client")
    signed_in = req.signed_in_person is not None
    if signed_in and claims is None:
        if req.confirm is None:
            return LogoutDecision(ASK, client, end_login=False, confirmed_by_form=False)
        if req.confirm != "yes":
            return LogoutDecision(DECLINED, client, end_login=False, confirmed_by_form=True)
        return LogoutDecision(SIGN_OUT, client, end_login=True, confirmed_by_form=True)
    ends = signed_in and (claims is None or claims.get("sub") == req.signed_in_person)
    return LogoutDecision(SIGN_OUT, client, end_login=ends, confirmed_by_form=False)


def revoke_session_tokens(session: Session, session_id: str) -> None:
    """Revoke the refresh tokens (and their access tokens) issued in a login session; flushes."""
    revoke_families(session, RefreshToken.session_id == session_id, reason="logout")
