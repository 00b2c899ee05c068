"""Apps and their templates: versions, declared variables, SMS approval.

A template is never edited: a change is a new version, and sending uses the newest. Its
sources are checked in the sandbox when created, so a template that would break out of it
never becomes usable. SMS text needs approval (as carriers require of registered templates).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import NotFound
from messaging import rendering
from messaging.models import App, Template


class TemplateNotFound(NotFound):
    code, title = "template_not_found", "No such template version"


def ensure_app(session: Session, client_id: str, name: str, *, may_send_raw: bool = False,
               sms_sign_name: str = "西安政务") -> App:
    """(not committed)"""
    app = session.get(App, client_id)
    if app is None:
        app = App(client_id=client_id, name=name, may_send_raw=may_send_raw, sms_sign_name=sms_sign_name)
        session.add(app)
    app.may_send_raw, app.sms_sign_name = may_send_raw, sms_sign_name
    return app


def create_template(session: Session, app: str, data: dict[str, Any], *, now: datetime | None = None) -> Template:
    """A new version of ``data["code"]`` for ``app`` (commit).

    :raise rendering.TemplateUnsafe: a source does not render in the sandbox.
    :raise rendering.ContentTooLarge:
    """
    variables = list(dict.fromkeys(data["variables"]))
    rendering.check_source(data["title"], variables, limit=255)
    rendering.check_source(data["body"], variables)
    if data.get("email_html"):
        rendering.check_source(data["email_html"], variables, html=True, limit=rendering.MAX_HTML_CHARS)
    if data.get("sms_text"):
        rendering.check_source(data["sms_text"], variables, limit=rendering.MAX_SMS_CHARS)
    latest = session.scalar(select(func.max(Template.version)).where(Template.app == app,
                                                                     Template.code == data["code"])) or 0
    template = Template(app=app, code=data["code"], version=latest + 1, variables=variables, title=data["title"],
                        body=data["body"], email_html=data.get("email_html"), sms_text=data.get("sms_text"),
                        sms_template_code=data.get("sms_template_code"), created_at=now or utcnow())
    session.add(template)
    session.commit()
    return template


def list_templates(session: Session, app: str) -> list[Template]:
    return list(session.scalars(select(Template).where(Template.app == app)
                                .order_by(Template.code, Template.version)))


def approve_sms(session: Session, app: str, code: str, version: int, *, now: datetime | None = None) -> Template:
    """(commit) :raise TemplateNotFound:"""
    template = session.scalars(select(Template).where(Template.app == app, Template.code == code,
                                                      Template.version == version)).first()
    if template is None or not template.sms_text:
        raise TemplateNotFound("no such template version with SMS text")
    template.sms_approved_at = template.sms_approved_at or now or utcnow()
    session.commit()
    return template
