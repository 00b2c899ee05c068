"""Database models of the identity service (its own database).

Personal data (ID numbers, mobile numbers, e-mail addresses) is stored only as SM4-GCM ciphertext plus a keyed
blind index (HMAC-SM3) for exact-match lookup; see :mod:`common.crypto.pii`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.db import utcnow
from common.peers.outbox import NotificationOutboxMixin
from identity.base import Base


def new_id() -> str:
    return uuid.uuid4().hex


class Person(Base):
    """A natural person (自然人); ``id`` is the opaque OIDC subject."""

    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    id_number_enc: Mapped[str] = mapped_column(Text)
    id_number_index: Mapped[str] = mapped_column(String(64), unique=True)
    mobile_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    mobile_index: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Optional, for the message hub's e-mail channel; not a login name, so no blind index.
    email_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    # 可信等级 L1..L4; changes are recorded in AssuranceEvent.
    assurance_level: Mapped[int] = mapped_column(Integer, default=1)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    totp_secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    grants: Mapped[list[StaffGrant]] = relationship(back_populates="person", lazy="selectin")

    @property
    def totp_enabled(self) -> bool:
        return self.totp_secret_enc is not None


class AssuranceEvent(Base):
    """A change of a person's assurance level (who/what raised it, from and to)."""

    __tablename__ = "assurance_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    from_level: Mapped[int] = mapped_column(Integer)
    to_level: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Organisation(Base):
    """A legal person (法人), keyed by its unified social credit code (GB 32100)."""

    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[OrganisationMember]] = relationship(
        back_populates="organisation", lazy="selectin", cascade="all, delete-orphan")


class OrganisationMember(Base):
    """A natural person acting for an organisation: 法定代表人 or 经办人."""

    __tablename__ = "organisation_members"
    __table_args__ = (UniqueConstraint("organisation_id", "person_id", "role",
                                       name="uq_organisation_members_org_person_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))  # "legal_representative" | "agent"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="members")


class StaffGrant(Base):
    """A staff (工作人员) role in a department, with parameters (e.g. licence types)."""

    __tablename__ = "staff_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    department: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    scopes: Mapped[str] = mapped_column(String(512))  # space separated
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)

    person: Mapped[Person] = relationship(back_populates="grants")


class LoginSession(Base):
    """A browser login; the signed cookie names it, so revoking the row signs the browser out."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    auth_time: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    acr: Mapped[int] = mapped_column(Integer)
    amr: Mapped[str] = mapped_column(String(64))  # space separated, e.g. "pwd otp"
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(255), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class PasswordReset(Base):
    """A single-use password-reset token; only its SM3 hash is stored."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(NotificationOutboxMixin, Base):
    """What identity tells people through the message hub (password-reset links), written in
    the transaction of the change it reports and relayed by the worker (identity.notify)."""

    __tablename__ = "notifications"
