"""Public pages: the verification page for service windows (核验) and the holder's QR page (亮证).

The verification page checks an offline code (``XL1:…``) against this node's own trust list
and current status list, and shows the result with each check and the fields the holder put
in the code. Short authorisation codes are verified by a window's system through ``POST
/verify`` with its ``licenses:verify`` token (they are bound to that window), so the page
says so instead of checking them anonymously. The QR page draws the code it is posted (never
one from its URL) and looks nothing up; both pages are ``Cache-Control: no-store``. Chinese by
default, English with ``?lang=en``; no JavaScript needed.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request

from common.db import get_session
from common.values.times import local_time
from common.web.i18n import _, current_language
from common.web.i18n import init_i18n as _init_i18n
from common.web.pages import not_stored, protect

from . import catalogue, offline_codes, offline_keys
from .i18n import CATALOG

# Both pages may show a live code: kept by no cache.
bp = not_stored(protect(Blueprint("licenses_pages", __name__, template_folder="templates")))


def _issuer() -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/licenses"


def check_offline(text: str) -> tuple[offline_codes.OfflineResult | None, str | None]:
    session = get_session()
    kek = current_app.extensions["licenses"]["kek"]
    trust = offline_codes.TrustList.from_json(offline_keys.trust_list(session, kek, _issuer()))
    status = offline_codes.StatusList.from_json(
        offline_keys.status_list(session, kek, int(current_app.config["LICENSES_STATUS_LIST_BITS"])), trust)
    try:
        return offline_codes.verify_code(text, trust, status), None
    except offline_codes.OfflineCodeInvalid as exc:
        return None, exc.code


def field_labels(type_code: str) -> dict[str, str]:
    """The catalogue's label of each field of ``type_code`` in the page's language: a code
    carries field names only. Empty for a type this node does not know (the page then shows
    the names)."""
    try:
        licence_type = catalogue.get_type(get_session(), type_code)
    except catalogue.UnknownType:
        return {}
    english = current_language() == "en"
    return {spec.name: spec.label_en if english and spec.label_en else spec.label
            for spec in catalogue.field_specs(licence_type)}


def code_in_url() -> Response | None:
    """A GET with ``?code=``: see other, the same page without it (other parameters kept), so
    the code leaves the address bar, and the links the page would build from its URL (the
    language switch repeats the query). ``None``: no code in the URL."""
    if request.method != "GET" or "code" not in request.args:
        return None
    kept = [(k, v) for k, v in request.args.items(multi=True) if k != "code"]
    return redirect(f"{request.script_root}{request.path}" + (f"?{urlencode(kept)}" if kept else ""), 303)


@bp.route("/check", methods=["GET", "POST"])
def check():
    if (away := code_in_url()) is not None:
        return away
    code = (request.form.get("code") or "").strip()
    result = refusal = None
    short = False
    if request.method == "POST" and code:
        if code.upper().startswith(offline_codes.PREFIX):
            result, refusal = check_offline(code)
        else:
            short = True
    labels = field_labels(str(result.claims.get("t", ""))) if result else {}
    expires = local_time(datetime.fromtimestamp(result.expires_at, timezone.utc), "%Y-%m-%d %H:%M:%S") if result else ""
    return render_template("licenses/check.html", code=code, result=result, refusal=refusal, short=short,
                           refusal_text=_(f"refusal.{refusal}") if refusal else None, labels=labels, expires=expires)


class TooLongForQr(ValueError):
    """More than a QR code holds at error correction M (3,391 alphanumeric characters, fewer bytes)."""


def qr_data_uri(data: str) -> str:
    """:raise TooLongForQr:"""
    import qrcode
    from qrcode.exceptions import DataOverflowError

    try:
        image = qrcode.make(data, error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=5, border=2)
    except (ValueError, DataOverflowError) as exc:  # past version 40: ValueError, or qrcode's own
        raise TooLongForQr(f"{len(data)} characters do not fit a QR code") from exc
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@bp.route("/show", methods=["GET", "POST"])
def show():
    """GET: a form to paste a code into; POST: that code's QR.

    The code comes from the POST body only: a live code in the URL (``/show?code=``) stays in
    access logs, the browser's history and ``Referer``. A GET with ``?code=`` is sent on to the
    empty form (``code_in_url``), not refused with 405: GET is this page's own method, and an old
    link still lands where a code can be pasted; nothing is drawn from the URL. No QR this node
    prints needs the URL: each encodes the bare code (``holder_api.png``; the holder's own page
    draws it from the authorisation's id). The form keeps the blueprint's CSRF check, as the
    check page does, though the page is public and shows only what it is sent: a forged POST
    could only draw, in the victim's own browser, a QR of a code its sender already knows.
    """
    if (away := code_in_url()) is not None:
        return away
    code = (request.form.get("code") or "").strip()[: offline_codes.MAX_CODE_CHARS] if request.method == "POST" else ""
    try:
        qr = qr_data_uri(code) if code else None
    except TooLongForQr:  # pasted text no QR code holds: said on the form, not a 500
        return render_template("licenses/show.html", code="", qr=None, too_long=True), 422
    return render_template("licenses/show.html", code=code, qr=qr)


def init_app(app: Flask) -> None:
    _init_i18n(app, CATALOG)
    app.register_blueprint(bp)
