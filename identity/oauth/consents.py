"""Consents: what a person allowed an app to ask for, remembered per client and scope set.

A later request whose scopes are within the remembered set skips the consent page; the
person can revoke a consent on the account page, which also revokes the app's refresh
tokens for that person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.db import utcnow
from identity.oauth.models import Consent, OAuthClient, RefreshToken

# Scope -> (Chinese, English) description shown on the consent page.
SCOPE_LABELS: dict[str, tuple[str, str]] = {
    "openid": ("确认您的身份（登录）", "Confirm who you are (sign in)"),
    "profile": ("您的姓名", "Your name"),
    "phone": ("您的手机号（部分隐藏）", "Your mobile number (masked)"),
    "phone:full": ("您的完整手机号", "Your full mobile number"),
    "idcard": ("您的身份证号（部分隐藏）", "Your citizen ID number (masked)"),
    "idcard:full": ("您的完整身份证号", "Your full citizen ID number"),
    "org": ("您所代表的单位（法人）", "The organisations you act for"),
    "staff": ("您的工作人员身份与岗位", "Your staff roles and departments"),
    "offline_access": ("在您离开后继续访问（刷新令牌）", "Keep access while you are away (refresh tokens)"),
    "licenses:holder": ("您持有的电子证照及其授权使用", "Your electronic licences and who may use them"),
    "messaging:inbox": ("您的消息与通知偏好", "Your messages and notification preferences"),
}


@dataclass(frozen=True)
class ConsentView:
    client_id: str
    client_name: str
    scope: str
    granted_at: datetime


def describe_scopes(scopes: list[str], lang: str) -> list[tuple[str, str]]:
    """``(scope, description)`` in ``lang``; unknown scopes (API scopes) show as themselves."""
    index = 1 if lang == "en" else 0
    described = []
    for scope in scopes:
        label = SCOPE_LABELS.get(scope)
        if label is None:
            label = (f"调用接口：{scope}", f"Call APIs: {scope}")
        described.append((scope, label[index]))
    return described


def _normalise(scopes) -> str:
    return " ".join(sorted(set(scopes)))


def has_consent(session: Session, person_id: str, client_id: str, scopes) -> bool:
    row = session.scalar(select(Consent).where(Consent.person_id == person_id, Consent.client_id == client_id))
    return row is not None and set(scopes) <= set(row.scope.split())


def record_consent(session: Session, person_id: str, client_id: str, scopes) -> Consent:
    """Remember (or widen) the consent; flushes, the caller commits."""
    row = session.scalar(select(Consent).where(Consent.person_id == person_id, Consent.client_id == client_id))
    if row is None:
        row = Consent(person_id=person_id, client_id=client_id, scope=_normalise(scopes), granted_at=utcnow())
        session.add(row)
    else:
        row.scope = _normalise([*row.scope.split(), *scopes])
        row.granted_at = utcnow()
    session.flush()
    return row


def list_consents(session: Session, person_id: str) -> list[ConsentView]:
    rows = session.execute(select(Consent, OAuthClient.name)
                           .join(OAuthClient, OAuthClient.client_id == Consent.client_id)
                           .where(Consent.person_id == person_id).order_by(Consent.granted_at.desc()))
    return [ConsentView(client_id=c.client_id, client_name=name, scope=c.scope, granted_at=c.granted_at)
            for c, name in rows]


def revoke_consent(session: Session, person_id: str, client_id: str) -> bool:
    """Forget the consent and revoke the app's refresh tokens for this person; commits.

    Returns whether there was a consent.
    """
    from identity.oauth.refresh_tokens import revoke_families

    deleted = session.execute(delete(Consent).where(Consent.person_id == person_id,
                                                    Consent.client_id == client_id)).rowcount
    revoke_families(session, RefreshToken.person_id == person_id, RefreshToken.client_id == client_id,
                    reason="consent_revoked")
    session.commit()
    return bool(deleted)
