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
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr

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


def build_email(settings: SmtpSettings, item: Outgoing, to: str | None = None) -> Message:
    """The mail for ``item`` (``to`` overrides the To header: a group shares one mail).

    Built with the compat32 classes (``email.mime``): the modern ``EmailMessage`` parses every
    header it is given again, which cost more than the SMTP exchange itself.
    """
    content = item.content
    plain = MIMEText(content["text"], "plain", "utf-8")
    if content.get("html"):
        mail: Message = MIMEMultipart("alternative")
        mail.attach(plain)
        mail.attach(MIMEText(content["html"], "html", "utf-8"))
    else:
        mail = plain
    name, address = parseaddr(settings.sender)
    mail["From"] = formataddr((str(Header(name, "utf-8")), address)) if name else address
    mail["To"] = to or item.email
    mail["Subject"] = Header(content["subject"], "utf-8")
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = f"<{item.dedupe_id}@xsn-messaging>"
    mail["X-XSN-Message-Id"] = item.message_id
    return mail


class EmailChannel:
    commit_each = False
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
            self._connection().send_message(build_email(self.settings, item), to_addrs=[item.email])
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

    def send_batch(self, session: Session, items: list[Outgoing]) -> list[Outcome]:
        """Items of one message with the same content go as one mail with many recipients
        (``To: undisclosed-recipients``, one RCPT each): SMTP's own batching. Outcomes in order."""
        outcomes: dict[int, Outcome] = {}
        groups: dict[tuple, list[Outgoing]] = {}
        for item in items:
            if not item.email:
                outcomes[item.delivery_id] = Outcome("failed", error="no_email")
                continue
            key = (item.message_id, item.content["subject"], item.content["text"], item.content.get("html"))
            groups.setdefault(key, []).append(item)
        for group in groups.values():
            if len(group) == 1:
                outcomes[group[0].delivery_id] = self.send(session, group[0])
                continue
            outcomes.update(self._send_group(group))
        return [outcomes[item.delivery_id] for item in items]

    def _send_group(self, group: list[Outgoing]) -> dict[int, Outcome]:
        mail = build_email(self.settings, group[0], to="undisclosed-recipients:;")
        sender = parseaddr(self.settings.sender)[1]
        try:
            # CRLF line ends: sendmail() sends bytes as given, and a bare-LF mail is one long line.
            data = mail.as_bytes(policy=mail.policy.clone(linesep="\r\n"))
            refused = self._connection().sendmail(sender, [i.email for i in group], data)
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
        except smtplib.SMTPResponseException as exc:
            self.close()
            status = "failed" if exc.smtp_code >= 500 else "retry"
            return {i.delivery_id: Outcome(status, error=f"SMTP {exc.smtp_code}") for i in group}
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return {i.delivery_id: Outcome("retry", error=f"SMTP unavailable: {type(exc).__name__}") for i in group}
        outcomes = {}
        for item in group:
            if item.email in refused:
                code = refused[item.email][0]
                outcomes[item.delivery_id] = Outcome("failed" if code >= 500 else "retry",
                                                     error=f"recipient refused ({code})")
            else:
                outcomes[item.delivery_id] = Outcome("delivered")
        return outcomes

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._smtp = None
