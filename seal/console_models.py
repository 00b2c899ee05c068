"""Sign-ins of the seal node's staff consoles (common.web.console_login), on the seal database."""

from __future__ import annotations

from common.web.console_login.models import ConsoleLoginMixin, ConsoleSessionMixin
from seal.base import Base


class ConsoleLogin(ConsoleLoginMixin, Base):
    __tablename__ = "console_logins"


class ConsoleSession(ConsoleSessionMixin, Base):
    __tablename__ = "console_sessions"
