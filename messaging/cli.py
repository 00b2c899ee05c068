"""``xsn messaging ...``: read the SMTP sink's mail, run the relay and sweeper by hand, the demo's bulk body."""

from __future__ import annotations

import json
from datetime import datetime

import click

from common.config import var_dir


@click.group(help="Message hub.")
def cli() -> None:
    pass


@cli.command("mail")
@click.option("--last", default=10, show_default=True, help="how many of the newest mails")
@click.option("--to", "to", default=None, help="only mails to this address")
def mail(last: int, to: str | None) -> None:
    """Mails the embedded SMTP sink received (var/mail)."""
    from messaging.smtp_sink import mailbox_dir, read_mailbox

    mails = [m for m in read_mailbox(mailbox_dir(var_dir())) if to is None or to.lower() in str(m["To"]).lower()]
    for message in mails[-last:]:
        body = message.get_body(preferencelist=("plain",))
        click.echo(f"--- {message['Date']}  To: {message['To']}\nSubject: {message['Subject']}\n"
                   f"{body.get_content().strip() if body else ''}\n")
    if not mails:
        click.echo("no mail yet")


@cli.command("relay")
def relay_once() -> None:
    """Hand due deliveries to the workers now (beat does this every second)."""
    from common.ops.tasks import celery_app
    from common.web.app import service_session
    from messaging import delivery, dispatch, wiring

    with service_session("messaging") as (app, session):
        count = delivery.relay(session, dispatch.CeleryDispatcher(celery_app.send_task),
                               wiring.delivery_settings(app.config))
    click.echo(f"{count} dispatched")


@cli.command("sweep")
def sweep_once() -> None:
    """Re-queue deliveries stuck with a worker past the deadline."""
    from common.web.app import service_session
    from messaging import delivery, wiring

    with service_session("messaging") as (app, session):
        click.echo(f"{delivery.sweep(session, wiring.delivery_settings(app.config))} re-queued")


@cli.command("demo-bulk-body")
@click.option("--channels", default="sms,inapp", show_default=True, help="channel order")
def demo_bulk_body(channels: str) -> None:
    """The body of one templated send to the 1,000 demo recipients (docs/DEMO.md), as JSON.

    Which seeded quiet-hours group is asleep right now goes to stderr.
    """
    from common import demo_recipients
    from common.values.times import CHINA

    body = {"template": "appointment_reminder", "category": "notice",
            "channels": [c.strip() for c in channels.split(",") if c.strip()],
            "variables": {"name": "市民", "hall": "雁塔区政务服务中心", "time": "12月8日 09:30"},
            "recipients": [{"subject": r.subject} for r in demo_recipients.recipients()]}
    click.echo(json.dumps(body, ensure_ascii=False))
    held = demo_recipients.quiet_kind_at(datetime.now(CHINA))
    start, end = demo_recipients.QUIET_HOURS[held]
    click.echo(f"now inside quiet hours: the {held} group ({start // 60:02d}:{start % 60:02d}-"
               f"{end // 60:02d}:{end % 60:02d} Beijing time, index % 10 == "
               f"{demo_recipients.KINDS.index(held)})", err=True)
