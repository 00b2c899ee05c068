"""Security headers on the pages every service renders, and the API documentation's own assets.

A page (``text/html``) of ours:
- may not be framed by another site: the identity node's login and consent pages above all,
  where a framed, disguised consent button would grant a client access (clickjacking,
  RFC 6749 §10.13; RFC 9700 §4.16). ``frame-ancestors 'none'`` for current browsers,
  ``X-Frame-Options: DENY`` for the older ones a government window may still run;
- loads nothing from elsewhere and runs no script: the pages are plain server-rendered forms
  without JavaScript, so the policy allows none (``default-src 'none'``) and an injected
  ``<script>`` would not run even if escaping ever failed. Styles are inline in the page shell
  (``base.html``) and images are our own or ``data:`` URIs (the QR codes);
- does not hand its URL to another site in ``Referer``: a password-reset link carries its token
  in the path. ``same-origin``, not ``no-referrer``: Flask-WTF checks the Referer of a form
  posted over HTTPS against the host, so our own forms must still send it.
``form-action`` is deliberately not restricted: Chromium applies it to the redirect after a
form is posted, and the consent form ends in a redirect to the client's ``redirect_uri``, the
cashier's in one to the payment institution.

The Swagger UI page (flask-smorest's ``/docs``) needs scripts, its own and the inline one that
starts it; it gets a policy of its own that allows both from this origin only. Its assets are
served by each service from the pinned ``swagger-ui-py`` package (``/docs/assets/…``)
instead of a CDN: a government network may not reach one, and an unpinned CDN path would run
whatever was published there last inside our origin.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from flask import Blueprint, Flask, Response, request, send_from_directory

PAGE_POLICY = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "frame-ancestors 'none'; base-uri 'none'")
DOCS_POLICY = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
DOCS_ENDPOINT = "api-docs.openapi_swagger_ui"
# Swagger UI 5's files as the ``swagger-ui-py`` package ships them (5 reads OpenAPI 3.1, which
# our documents are; the older ``swagger-ui-bundle`` package's 4.x cannot render them). Only the
# directory is used: found without importing the package, whose own integrations we don't need.
SWAGGER_UI_FILES = Path(importlib.util.find_spec("swagger_ui").origin).parent / "static"
assets = Blueprint("swagger_ui_assets", __name__)


@assets.get("/docs/assets/<path:filename>")
def docs_asset(filename: str) -> Response:
    # send_from_directory refuses paths that leave the directory (404).
    return send_from_directory(SWAGGER_UI_FILES, filename, max_age=86_400)


def _secure(response: Response) -> Response:
    headers = response.headers
    # Every answer: a browser must not take a download (a licence's document, a signature) or
    # an asset for another type than it is sent as.
    headers["X-Content-Type-Options"] = "nosniff"
    # The content type, not the endpoint, says what a browser will render: error pages and
    # redirects' bodies included.
    if response.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = DOCS_POLICY if request.endpoint == DOCS_ENDPOINT else PAGE_POLICY
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "same-origin"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(assets)
    app.after_request(_secure)
