"""The OpenID Provider metadata document (OIDC Discovery 1.0 §3). Flask-free."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from identity.oauth.kernel import PERSON_SCOPES
from identity.oauth.tokens import ACR_VALUES


def discovery_document(issuer: str, extra_scopes: Iterable[str] = ()) -> dict[str, Any]:
    """Every URL is under ``issuer`` (from configuration, never the request's ``Host``)."""
    base = issuer
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "jwks_uri": f"{base}/jwks.json",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "end_session_endpoint": f"{base}/oauth/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": sorted({*PERSON_SCOPES, *extra_scopes}),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
                             "at_hash", "name", "updated_at", "phone_number", "phone_number_verified", "email",
                             "email_verified", "id_number", "organisations", "staff", "assurance_level"],
        "acr_values_supported": list(ACR_VALUES),
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "ui_locales_supported": ["zh-CN", "en"],
        "authorization_response_iss_parameter_supported": False,
    }
