"""``xsn licenses ...``: the catalogue, offline verification of QR codes, bulk jobs, keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group("licenses")
def cli() -> None:
    """Electronic licences (电子证照)."""


@cli.group("types")
def types() -> None:
    """The licence catalogue (证照目录)."""


@types.command("list")
def types_list() -> None:
    from common.web.app import service_session
    from licenses import catalogue

    with service_session("licenses") as (_app, session):
        for row in catalogue.list_types(session, include_retired=True):
            click.echo(f"{row.code}  {row.slug:24}  {row.holder_kind:12}  {row.status:8}  {row.name}")


@types.command("add")
@click.argument("definition", type=click.File("r", encoding="utf-8"))
def types_add(definition) -> None:
    """Add a type from a JSON file (the shape of POST /types)."""
    from common.errors import Problem
    from common.web.app import service_session
    from licenses import catalogue

    with service_session("licenses") as (_app, session):
        try:
            row = catalogue.create_type(session, json.load(definition), actor="cli")
        except Problem as exc:
            raise click.ClickException(f"{exc.code}: {exc.detail}") from None
        click.echo(f"added {row.code} {row.name}")


@types.command("show")
@click.argument("code")
def types_show(code: str) -> None:
    from common.errors import Problem
    from common.web.app import service_session
    from licenses import catalogue
    from licenses.api import type_view

    with service_session("licenses") as (_app, session):
        try:
            row = catalogue.get_type(session, code)
        except Problem as exc:
            raise click.ClickException(f"{exc.code}: {exc.detail}") from None
        click.echo(json.dumps(type_view(row), ensure_ascii=False, indent=2, default=str))


@cli.command("verify-qr")
@click.argument("code")
@click.option("--trust-list", "trust_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="the node's trust list, saved from GET /licenses/offline/trust-list")
@click.option("--status-list", "status_path", type=click.Path(exists=True, dir_okay=False),
              help="a status list saved from GET /licenses/offline/status-list (without it status is not checked)")
def verify_qr(code: str, trust_path: str, status_path: str | None) -> None:
    """Verify an offline licence code (XL1:...) with saved lists only: no network. ``-`` reads stdin.

    Exit status 0 when valid, 1 when refused (the reason's code is printed).
    """
    from licenses.offline_codes import OfflineCodeInvalid, StatusList, TrustList, verify_code

    text = sys.stdin.read().strip() if code == "-" else code
    try:
        trust = TrustList.from_json(json.loads(Path(trust_path).read_text()))
        status = StatusList.from_json(json.loads(Path(status_path).read_text()), trust) if status_path else None
        result = verify_code(text, trust, status)
    except OfflineCodeInvalid as exc:
        click.echo(json.dumps({"valid": False, "code": exc.code, "detail": exc.message}, ensure_ascii=False))
        sys.exit(1)
    except ValueError as exc:
        raise click.ClickException(f"a list file is not JSON: {exc}") from None
    click.echo(json.dumps({"valid": True, "claims": result.claims, "checks": result.checks,
                           "expires_at": result.expires_at}, ensure_ascii=False, indent=2))


@cli.command("expire")
def expire() -> None:
    """Mark licences past their validity as expired (the beat task does this hourly)."""
    from common.web.app import service_session
    from licenses.lifecycle import expire_due

    with service_session("licenses") as (_app, session):
        click.echo(f"expired {expire_due(session)}")


@cli.command("rotate-offline-key")
def rotate_offline_key() -> None:
    """A new offline-code key; the old one stays in the trust list as retired."""
    from common.crypto.keystore import load_kek
    from common.web.app import service_session
    from licenses.offline_keys import PURPOSE, keystore

    with service_session("licenses") as (app, session):
        row = keystore(session, load_kek(app.config)).rotate(PURPOSE)
        session.commit()
        click.echo(f"new offline-code key {row.kid}")


@cli.command("run-bulk-job")
@click.argument("job_id")
def run_bulk_job(job_id: str) -> None:
    """Run (or resume) a bulk job to the end in this process."""
    from common.web.app import service_session
    from licenses.bulk import jobs
    from licenses.models import BulkJob

    with service_session("licenses") as (app, session):
        job = session.get(BulkJob, job_id)
        if job is None:
            raise click.ClickException(f"no bulk job {job_id}")
        while job.status in jobs.RUNNABLE:
            jobs.run_job(session, app.extensions["licenses"]["deps"], job, batch=int(app.config["LICENSES_BULK_BATCH"]),
                         max_seconds=60, lease_seconds=float(app.config["LICENSES_BULK_LEASE_SECONDS"]),
                         inflight=int(app.config["LICENSES_BULK_INFLIGHT"]))
            click.echo(f"{job.issued} issued, {job.invalid} invalid of {job.total}")
