"""The inbox page (我的消息) for the signed-in person.

Sign-in: the person signs in with their identity account (OpenID Connect through the gateway,
:mod:`common.web.console_login`, client ``xsn-messaging-inbox``); the access token must carry
``messaging:inbox`` and is re-verified on every view. The views read and change the inbox only
through :mod:`messaging.channels.inapp`. Forms carry CSRF tokens; no JavaScript is needed.
Whatever fails in a view (someone else's item, an expired form, a bug) answers an error page
(:func:`common.web.pages.html_errors`).
"""

from __future__ import annotations

from datetime import timedelta, timezone

from flask import Blueprint, Flask, flash, g, redirect, render_template, url_for

from common.db import get_session
from common.web.console_login import console_required, make_console_login
from common.web.i18n import _
from common.web.pages import html_errors, protect
from messaging.channels import inapp

INBOX_SCOPE = "messaging:inbox"
CONSOLE = "messaging_inbox_login"
CHINA = timezone(timedelta(hours=8), "CST")
bp = html_errors(protect(Blueprint("inbox_pages", __name__, url_prefix="/me", template_folder="templates")),
                 back="inbox_pages.inbox", back_text="inbox.back",
                 texts={"inbox_item_not_found": "inbox.error.not_found", "csrf_failed": "inbox.error.csrf_failed"})
inbox_required = console_required(CONSOLE, INBOX_SCOPE)


def local_time(value) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if value else ""


def _subject() -> str:
    return str(g.console_claims["sub"])


@bp.route("/inbox")
@inbox_required
def inbox():
    session = get_session()
    items = inapp.list_items(session, _subject(), limit=100)
    return render_template("messaging/inbox.html", items=items, unread=inapp.unread_count(session, _subject()),
                           local_time=local_time)


@bp.route("/inbox/<int:item_id>/read", methods=["POST"])
@inbox_required
def mark_read(item_id: int):
    inapp.mark_read(get_session(), _subject(), item_id)
    flash(_("inbox.marked"))
    return redirect(url_for("inbox_pages.inbox"))


@bp.route("/inbox/read-all", methods=["POST"])
@inbox_required
def mark_all_read():
    inapp.mark_all_read(get_session(), _subject())
    flash(_("inbox.marked"))
    return redirect(url_for("inbox_pages.inbox"))


@bp.route("/inbox/<int:item_id>/delete", methods=["POST"])
@inbox_required
def delete(item_id: int):
    inapp.delete_item(get_session(), _subject(), item_id)
    flash(_("inbox.deleted"))
    return redirect(url_for("inbox_pages.inbox"))


def init_app(app: Flask) -> None:
    login_bp = make_console_login(CONSOLE, client_id=app.config["MESSAGING_INBOX_CLIENT_ID"],
                                  scopes=("openid", "profile", INBOX_SCOPE), on_success_endpoint="inbox_pages.inbox",
                                  url_prefix="/me", base_template="messaging/layout.html")
    app.register_blueprint(login_bp)
    app.register_blueprint(bp)
