"""``xsn ledger ...`` and ``xsn payment ...`` commands."""

from __future__ import annotations

import sys

import click

from common.web.app import service_session
from payment.ledger.checks import check_ledger


@click.group("payment")
def cli() -> None:
    """The payment node (统一公共支付)."""


@cli.command("expire")
def expire() -> None:
    """Expire unpaid notices past their due date now."""
    from datetime import date

    from payment.notices import expire_due_notices

    with service_session("payment") as (_app, session):
        count = expire_due_notices(session, date.today())
        session.commit()
    click.echo(f"expired {count} notice(s)")


@cli.command("close-stale-orders")
@click.option("--older-than", type=float, default=None,
              help="seconds an order may stay open (default: PAYMENT_ORDER_TIMEOUT)")
def close_stale(older_than: float | None) -> None:
    """Resolve orders left open with their institution now (what payment.close_stale_orders does)."""
    from datetime import timedelta

    from common.db import utcnow
    from payment.stale_orders import close_stale_orders

    with service_session("payment") as (app, session):
        timeout = older_than if older_than is not None else float(app.config["PAYMENT_ORDER_TIMEOUT"])
        counts = close_stale_orders(session, app.extensions["payment_channels"], app.extensions["payment_institution"],
                                    now=utcnow(), timeout=timedelta(seconds=timeout))
    click.echo(", ".join(f"{outcome} {n}" for outcome, n in sorted(counts.items())) or "no stale orders")


@cli.command("channel-sim")
@click.option("--port", default=8009, show_default=True)
@click.option("--retry-scale", default=0.02, show_default=True,
              help="multiplies the institutions' retry ladder (1.0 = real: 15 s, 15 s, 30 s, 3 min, ...)")
def channel_sim(port: int, retry_scale: float) -> None:
    """Run the payment channel simulator (the institutions) on 127.0.0.1:PORT."""
    from werkzeug.serving import run_simple

    from common.config import var_dir
    from payment.channel_sim.app import create_sim_app
    from payment.config import SETTINGS

    app = create_sim_app(var_dir(), merchant_id=SETTINGS["PAYMENT_WECHAT_MERCHANT_ID"],
                         app_id=SETTINGS["PAYMENT_ALIPAY_APP_ID"], retry_scale=retry_scale)
    run_simple("127.0.0.1", port, app, threaded=True)


@click.group("ledger")
def ledger_cli() -> None:
    """The payment node's double-entry ledger."""


@ledger_cli.command("check")
def check() -> None:
    """Check every ledger invariant from the stored rows; exit 1 on any finding."""
    with service_session("payment") as (_app, session):
        report = check_ledger(session)
    for finding in report.findings:
        click.echo(f"FAIL {finding}")
    click.echo(f"{'OK' if report.ok else 'FAILED'}: {report.accounts} accounts, {report.transfers} transfers")
    sys.exit(0 if report.ok else 1)


TOP_LEVEL = [ledger_cli]
