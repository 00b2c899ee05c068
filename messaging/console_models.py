"""Sign-ins to the inbox page (common.web.console_login), on the messaging database."""

from __future__ import annotations

from common.web.console_login.models import ConsoleLoginMixin, ConsoleSessionMixin
from messaging.models import Base


class ConsoleLogin(ConsoleLoginMixin, Base):
    __tablename__ = "console_logins"


class ConsoleSession(ConsoleSessionMixin, Base):
    __tablename__ = "console_sessions"
