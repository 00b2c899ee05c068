"""Sign-ins to the holders' pages (common.web.console_login), on the licences database."""

from __future__ import annotations

from common.web.console_login.models import ConsoleLoginMixin, ConsoleSessionMixin
from licenses.base import Base


class ConsoleLogin(ConsoleLoginMixin, Base):
    __tablename__ = "console_logins"


class ConsoleSession(ConsoleSessionMixin, Base):
    __tablename__ = "console_sessions"
