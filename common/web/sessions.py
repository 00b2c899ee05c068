"""Flask's signed-cookie session, paid for only by requests that carry or change one.

Flask opens the session of every request before routing: it builds an itsdangerous
serializer (key derivation set-up, about a tenth of a trivial request's cost here) and
parses the ``Cookie`` header, even for ``/livez`` or a bearer-token API call that never
looks at the session. This interface keeps Flask's format, signing and cookie attributes
exactly, but builds the serializer once per key set and returns a fresh empty session at
once when the request has no session cookie; an untouched empty session saves nothing.
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer
from werkzeug.wrappers import Request, Response


class LazyCookieSessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializers: dict[tuple, URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        # Keyed by the keys themselves: a rotation (new SECRET_KEY, fallbacks) takes effect at once.
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        try:
            return self._serializers[keys]
        except KeyError:
            serializer = super().get_signing_serializer(app)
            self._serializers = {keys: serializer}  # the newest key set only: rotation does not grow it
            return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not app.secret_key:
            return None
        # The raw header first: most requests (probes, APIs, load balancers) send no cookie at all.
        if "HTTP_COOKIE" not in request.environ or not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified and not session.accessed:
            return  # nothing read, nothing written: no cookie to set or delete, no Vary
        super().save_session(app, session, response)
