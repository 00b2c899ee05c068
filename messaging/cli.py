"""``xsn messaging ...``: read the SMTP sink's mail, run the relay and sweeper by hand."""

from __future__ import annotations

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
