"""The OAuth 2.0 / OpenID Connect server of the identity node, one module per concern.

Where things are:

- :mod:`.server` wires Authlib's authorization server into the app (``init_oauth``);
- :mod:`.grants` holds the thin Authlib grant subclasses (only the hooks Authlib asks for);
- :mod:`.issuing` mints access / refresh / ID tokens; :mod:`.tokens` signs and reads them;
- :mod:`.refresh_tokens` rotates refresh tokens (``rotate``) and revokes families on reuse;
- :mod:`.revocations` records revoked access tokens and serves the revocation feed;
- :mod:`.authorize`, :mod:`.userinfo`, :mod:`.logout`, :mod:`.discovery`: the rules of those
  endpoints as plain functions; :mod:`.api` (JSON endpoints) and :mod:`.pages` (browser
  endpoints) only translate HTTP;
- :mod:`.clients`, :mod:`.consents`, :mod:`.models`, :mod:`.seed`, :mod:`.admin_api`.

Access tokens are not stored: services verify them locally. Refresh tokens and codes are
stored as SHA-256 digests; revoking an access token records its ``jti``, which identity's own
endpoints honour and which the revocation feed hands to the gateway.
"""
