"""``xsn audit ...`` (also ``xsn gateway audit``): verify the log, export and check evidence, archive, prune.

``verify`` (no ``--bundle``), ``checkpoint``, ``export``, ``archive`` and ``prune`` run next to
the gateway's database (operators); ``verify --bundle`` needs nothing but files.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import click

from common.crypto.keystore import load_kek
from common.db import utcnow
from common.web.app import service_session
from gateway.audit.config import MIN_RETENTION_DAYS, archive_dir, setting


@click.group("audit")
def audit() -> None:
    """Audit log of every call (调用审计日志)."""


def _origin(app) -> str:
    return str(setting(app.config, "AUDIT_LOG_ORIGIN"))


@audit.command("checkpoint")
def checkpoint_command() -> None:
    """Sign and store a checkpoint now if the log grew."""
    from gateway.audit import checkpoints

    with service_session("gateway") as (app, session):
        row = checkpoints.publish(session, checkpoints.load_signer(session, load_kek(app.config), _origin(app)))
        click.echo(row.note, nl=False)


@audit.command("verify")
@click.option("--bundle", "bundle_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="check an exported bundle offline instead of the database")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="with --bundle: the pinned log public key (PEM), obtained out of band")
@click.option("--older", "older_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a saved older checkpoint the log must be consistent with")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def verify_command(bundle_path: Path | None, key_path: Path | None, older_path: Path | None, as_json: bool) -> None:
    """Check the log. Exit 0: every check passed; 1: a check failed; 2: unreadable input.

    Without --bundle: recompute every record's leaf, the tree, every signed checkpoint and
    (--older) consistency with a saved checkpoint, from the database.
    """
    older = older_path.read_text(encoding="utf-8") if older_path else None
    if bundle_path is not None:
        _verify_bundle(bundle_path, key_path, older, as_json)
        return
    from gateway.audit import checkpoints
    from gateway.audit.verify import verify_log

    with service_session("gateway") as (app, session):
        report = verify_log(session, checkpoints.verifiers(session, load_kek(app.config), _origin(app)),
                            older_note=older)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(f"size {report.size}: {report.records_checked} records, {report.nodes_checked} nodes, "
                   f"{report.checkpoints_checked} checkpoints checked")
        for problem in report.problems:
            where = ", ".join(f"{k} {v}" for k, v in problem.items() if k not in ("code", "detail"))
            click.echo(f"FAIL {problem['code']}: {problem['detail']}" + (f" ({where})" if where else ""))
        for note in report.notes:
            click.echo(f"OK   {note}")
        click.echo("VERIFIED" if report.ok else "VERIFICATION FAILED")
    sys.exit(0 if report.ok else 1)


def _verify_bundle(bundle_path: Path, key_path: Path | None, older: str | None, as_json: bool) -> None:
    from common.merkle_log.cli import verify_and_exit
    from gateway.audit.evidence import read_bundle, verify_bundle

    if key_path is None:
        click.echo("error: --bundle needs --key (the log key pinned out of band)", err=True)
        sys.exit(2)
    verify_and_exit(lambda: verify_bundle(read_bundle(bundle_path.read_bytes()), key_path.read_bytes(),
                                          older_checkpoint=older), as_json=as_json)


@audit.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="bundle file to write")
@click.option("--start", type=int, default=0, show_default=True, help="first leaf index")
@click.option("--end", type=int, default=None, help="last leaf index, exclusive (default: the checkpoint size)")
@click.option("--tree-size", type=int, default=None, help="prove against this checkpoint (default: a fresh one)")
@click.option("--consistency-from", "consistency_from", type=int, multiple=True,
              help="also prove consistency from this older tree size (repeatable)")
@click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the log's public key PEM here")
def export_command(out: Path, start: int, end: int | None, tree_size: int | None, consistency_from: tuple[int, ...],
                   key_out: Path | None) -> None:
    """Write records with a signed checkpoint and a range proof, for offline verification."""
    from common.errors import Problem
    from gateway.audit import evidence

    with service_session("gateway") as (app, session):
        try:
            bundle = evidence.export(session, kek=load_kek(app.config), origin=_origin(app), start=start, end=end,
                                     tree_size=tree_size, consistency_from=consistency_from)
        except Problem as exc:
            raise click.ClickException(exc.detail or exc.title) from None
    out.write_text(json.dumps(bundle, indent=1, ensure_ascii=False) + "\n")
    if key_out is not None and bundle["public_key"]:
        key_out.write_text(bundle["public_key"]["pem"])
    click.echo(f"wrote {len(bundle['records'])} records at tree size {bundle['tree_size']} to {out}")


def _before(app, days: int | None) -> object:
    days = int(days if days is not None else setting(app.config, "AUDIT_RETENTION_DAYS"))
    if days < MIN_RETENTION_DAYS:
        raise click.ClickException(f"retention must be at least {MIN_RETENTION_DAYS} days (GB/T 22239 level 3)")
    return utcnow() - timedelta(days=days)


@audit.command("archive")
@click.option("--days", type=int, default=None, help="archive records older than this (default: AUDIT_RETENTION_DAYS)")
@click.option("--prune", "then_prune", is_flag=True, help="then delete the archived records from the database")
def archive_command(days: int | None, then_prune: bool) -> None:
    """Write records older than the retention period to an archive bundle (then optionally prune)."""
    from gateway.audit import retention

    with service_session("gateway") as (app, session):
        before = _before(app, days)
        row = retention.archive(session, kek=load_kek(app.config), origin=_origin(app),
                                directory=archive_dir(app.config), before=before)
        click.echo(f"archived [{row.start}, {row.end}) to {row.path}" if row else "nothing new to archive")
        if then_prune:
            click.echo(f"pruned {retention.prune(session, before=before)} records")


@audit.command("prune")
@click.option("--days", type=int, default=None, help="prune records older than this (default: AUDIT_RETENTION_DAYS)")
def prune_command(days: int | None) -> None:
    """Delete records older than the retention period, only if an intact archive holds them."""
    from gateway.audit import retention

    with service_session("gateway") as (app, session):
        try:
            click.echo(f"pruned {retention.prune(session, before=_before(app, days))} records")
        except retention.NotArchived as exc:
            raise click.ClickException(exc.detail) from None
