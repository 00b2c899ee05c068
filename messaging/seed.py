"""Demo data (idempotent): the sending apps of our own nodes and the templates contract 4 names.

The SMS texts are approved here, as an operator would after the carrier registered them.
"""

from __future__ import annotations

import structlog
from flask import Flask
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from common import demo_recipients
from common.db import get_db
from messaging import catalogue
from messaging.models import Preference, QuietHours, Template

log = structlog.get_logger("xsn.messaging.seed")

# client_id -> (name, may send to raw phone/e-mail, SMS sign name)
APPS = {
    "xsn-licenses": ("电子证照", False, "西安电子证照"),
    "xsn-payment": ("统一公共支付", True, "西安公共支付"),
    "xsn-identity": ("统一身份认证", True, "西安统一身份认证"),
    # A department's app as a newcomer tries it (docs/DEMO.md): identity's seed registers the client.
    "xsn-demo-sender": ("消息发送应用 (demo)", True, "西安政务服务"),
}

_HTML = "<p>{body}</p><p style=\"color:#57606a\">西安市共性业务支撑平台 · 统一消息</p>"

TEMPLATES: dict[str, list[dict]] = {
    "xsn-licenses": [
        {"code": "licence_issued", "variables": ["licence_name", "face_number", "issuer"],
         "title": "电子证照已签发：{{ licence_name }}",
         "body": ("您的电子证照《{{ licence_name }}》（证照编号 {{ face_number }}）已由{{ issuer }}签发，"
                 "可在“我的证照”中查看。"),
         "sms_text": "您的{{ licence_name }}（编号{{ face_number }}）已由{{ issuer }}签发，可在我的证照中查看。",
         "sms_template_code": "SMS_XSN_LICENCE_ISSUED"},
        {"code": "licence_revoked", "variables": ["licence_name", "face_number", "reason"],
         "title": "电子证照已注销：{{ licence_name }}",
         "body": "您的电子证照《{{ licence_name }}》（证照编号 {{ face_number }}）已注销，原因：{{ reason }}。",
         "sms_text": "您的{{ licence_name }}（编号{{ face_number }}）已注销，原因：{{ reason }}。",
         "sms_template_code": "SMS_XSN_LICENCE_REVOKED"},
    ],
    "xsn-payment": [
        {"code": "payment_notice", "variables": ["payment_code", "amount_yuan", "due_date", "department"],
         "title": "缴费通知：{{ department }}",
         "body": "{{ department }}向您开具缴款通知，金额 {{ amount_yuan }} 元，缴款码 {{ payment_code }}，"
                 "请于 {{ due_date }} 前缴纳。",
         "sms_text": ("{{ department }}缴款通知：金额{{ amount_yuan }}元，缴款码{{ payment_code }}，"
                      "请于{{ due_date }}前缴纳。"),
         "sms_template_code": "SMS_XSN_PAYMENT_NOTICE"},
        {"code": "payment_receipt", "variables": ["payment_code", "amount_yuan", "receipt_number"],
         "title": "缴费成功",
         "body": "缴款码 {{ payment_code }} 已缴费 {{ amount_yuan }} 元，财政电子票据号 {{ receipt_number }}。",
         "sms_text": "缴款码{{ payment_code }}已缴费{{ amount_yuan }}元，电子票据号{{ receipt_number }}。",
         "sms_template_code": "SMS_XSN_PAYMENT_RECEIPT"},
    ],
    "xsn-identity": [
        {"code": "password_reset", "variables": ["link", "minutes"],
         "title": "重置密码",
         "body": ("您正在重置统一身份认证账号的密码，请在 {{ minutes }} 分钟内打开链接完成操作：{{ link }}。"
                  "如非本人操作，请忽略。"),
         "sms_text": "您正在重置密码，请在{{ minutes }}分钟内打开链接完成操作：{{ link }}。如非本人操作请忽略。",
         "sms_template_code": "SMS_XSN_PASSWORD_RESET"},
    ],
    "xsn-demo-sender": [
        {"code": "appointment_reminder", "variables": ["name", "hall", "time"],
         "title": "办事预约提醒",
         "body": "{{ name }}您好，您预约的{{ hall }}业务办理时间为 {{ time }}，请携带身份证按时到场。",
         "sms_text": "{{ name }}您好，您预约的{{ hall }}办理时间为{{ time }}，请携带身份证按时到场。",
         "sms_template_code": "SMS_XSN_APPOINTMENT_REMINDER"},
    ],
}


def seed(app: Flask) -> None:
    created = 0
    with get_db(app).session() as session:
        for client_id, (name, raw, sign) in APPS.items():
            catalogue.ensure_app(session, client_id, name, may_send_raw=raw, sms_sign_name=sign)
        session.commit()
        for client_id, templates in TEMPLATES.items():
            for spec in templates:
                existing = session.scalars(select(Template).where(Template.app == client_id,
                                                                  Template.code == spec["code"])).first()
                if existing is None:
                    body = spec["body"]
                    template = catalogue.create_template(session, client_id, {**spec, "email_html": _HTML.format(
                        body=body)})
                    catalogue.approve_sms(session, client_id, template.code, template.version)
                    created += 1
        preferences = seed_demo_preferences(session)
    log.info("messaging_seeded", apps=len(APPS), templates_created=created, demo_preferences_added=preferences)


def seed_demo_preferences(session: Session) -> int:
    """The demo recipients' opt-outs and quiet hours (``common.demo_recipients``), those missing (commit).

    Identity's seed registers the same people under the same subjects. Two SELECTs and at most
    two multi-row INSERTs, so a re-seed costs two queries.
    """
    people = demo_recipients.recipients()
    opted = [r for r in people if r.kind in demo_recipients.OPT_OUTS]
    quiet = [r for r in people if r.kind in demo_recipients.QUIET_HOURS]
    have = set(session.execute(select(Preference.subject, Preference.category, Preference.channel)
                               .where(Preference.subject.in_([r.subject for r in opted]))).all())
    preferences = [{"subject": r.subject, "category": category, "channel": channel, "enabled": False}
                   for r in opted for category, channels in [demo_recipients.OPT_OUTS[r.kind]]
                   for channel in channels if (r.subject, category, channel) not in have]
    have_quiet = set(session.scalars(select(QuietHours.subject)
                                     .where(QuietHours.subject.in_([r.subject for r in quiet]))))
    windows = [{"subject": r.subject, "start_minute": demo_recipients.QUIET_HOURS[r.kind][0],
                "end_minute": demo_recipients.QUIET_HOURS[r.kind][1]}
               for r in quiet if r.subject not in have_quiet]
    if preferences:
        session.execute(insert(Preference), preferences)
    if windows:
        session.execute(insert(QuietHours), windows)
    session.commit()
    return len(preferences) + len(windows)
