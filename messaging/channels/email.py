"""E-mail over real SMTP (``smtplib``): STARTTLS and authentication as configured.

One connection serves a whole batch. The Message-ID is fixed per delivery, so a receiver
that deduplicates by it sees a redelivered attempt as the same mail. A 5xx answer is a
permanent failure for this address; connection trouble and 4xx are retried.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from sqlalchemy.orm import Session

from messaging.channels import Outcome, Outgoing


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 8025
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    sender: str = "西安统一消息 <noreply@xsn.local>"
    timeout: float = 10.0


def build_email(settings: SmtpSettings, item: Outgoing) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = settings.sender
    mail["To"] = item.email
    mail["Subject"] = item.content["subject"]
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = f"<{item.dedupe_id}@xsn-messaging>"
    mail["X-XSN-Message-Id"] = item.message_id
    mail.set_content(item.content["text"])
    if item.content.get("html"):
        mail.add_alternative(item.content["html"], subtype="html")
    return mail


class EmailChannel:
    name = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self.settings.host, self.settings.port, timeout=self.settings.timeout)
            if self.settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.settings.username:
                smtp.login(self.settings.username, self.settings.password or "")
            self._smtp = smtp
        return self._smtp

    def send(self, session: Session, item: Outgoing) -> Outcome:
        if not item.email:
            return Outcome("failed", error="no_email")
        try:
            self._connection().send_message(build_email(self.settings, item))
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0] if exc.recipients else 550
            self.close()
            return Outcome("failed" if code >= 500 else "retry", error=f"recipient refused ({code})")
        except smtplib.SMTPResponseException as exc:
            self.close()
            return Outcome("failed" if exc.smtp_code >= 500 else "retry", error=f"SMTP {exc.smtp_code}")
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return Outcome("retry", error=f"SMTP unavailable: {type(exc).__name__}")
        # Accepted by the configured relay: the hub's last word on e-mail (no bounce handling).
        return Outcome("delivered")

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._smtp = None
