"""``xsn seal log ...``: publish checkpoints, export evidence bundles, verify them offline.

``checkpoint``, ``export`` and ``self-check`` run next to the database (operators); ``fetch``
gathers the same bundle as ``export`` over the auditor API with an ``audit:read`` token
(auditors); ``verify`` needs nothing but files: no network, no database.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.orm import Session

from common.merkle_log.cli import verify_and_exit
from common.web.app import service_session
from seal.log.service import LogSettings, publish, run_self_check
from seal.log.verify_offline import BundleError, Report, read_bundle, verify_bundle


@click.group("log")
def log_group() -> None:
    """Signature transparency log (签章日志)."""


@contextmanager
def _session() -> Iterator[tuple[Session, LogSettings]]:
    with service_session("seal") as (app, session):
        yield session, LogSettings.from_config(app.config)


@log_group.command("checkpoint")
def checkpoint_command() -> None:
    """Sign and store a checkpoint now if the log grew (idempotent otherwise)."""
    with _session() as (session, settings):
        row = publish(session, settings)
        click.echo(row.note, nl=False)


@log_group.command("self-check")
def self_check_command() -> None:
    """Recompute the log from its entries and compare with nodes and checkpoints."""
    with _session() as (session, settings):
        report = run_self_check(session, settings)
    click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    sys.exit(0 if report.ok else 1)


def _range_options(command):
    options = [
        click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
                     help="bundle file to write"),
        click.option("--start", type=int, default=0, show_default=True, help="first leaf index"),
        click.option("--end", type=int, default=None, help="last leaf index, exclusive (default: the checkpoint size)"),
        click.option("--tree-size", type=int, default=None, help="prove against this checkpoint (default: the latest)"),
        click.option("--consistency-from", "consistency_from", type=int, multiple=True,
                     help="also include a consistency proof from this older tree size (repeatable)"),
        click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="also write the log's public key PEM here (pin a key obtained out of band to verify)"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _write_bundle(source, out: Path, key_out: Path | None, **selection) -> None:
    from seal.log.bundle import BundleSourceError, assemble_bundle

    try:
        bundle = assemble_bundle(source, **selection)
    except BundleSourceError as exc:
        raise click.ClickException(str(exc)) from None
    out.write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n")
    if key_out is not None:
        key_out.write_text(bundle["public_key"]["pem"])
    click.echo(f"wrote {len(bundle['entries'])} entries at tree size {bundle['tree_size']} to {out}")


@log_group.command("export")
@_range_options
def export_command(out: Path, start: int, end: int | None, tree_size: int | None,
                   consistency_from: tuple[int, ...], key_out: Path | None) -> None:
    """Write a JSON bundle from the database: checkpoint, entries with proofs and SES signatures, log key."""
    from seal.log.bundle import DatabaseSource

    with _session() as (session, settings):
        _write_bundle(DatabaseSource(session, settings), out, key_out, start=start, end=end, tree_size=tree_size,
                      consistency_from=consistency_from)


@log_group.command("fetch")
@click.option("--url", required=True, help="the seal node, directly or through the gateway "
                                           "(e.g. http://127.0.0.1:8000/seal)")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="file holding an access token with audit:read (default: $XSN_AUDIT_TOKEN)")
@_range_options
def fetch_command(url: str, token_file: Path | None, out: Path, start: int, end: int | None, tree_size: int | None,
                  consistency_from: tuple[int, ...], key_out: Path | None) -> None:
    """Write the same JSON bundle as `export`, fetched over the auditor API (no database needed).

    The token is read from a file or the environment, never from the command line, where other
    users of the machine could see it.
    """
    from seal.log.bundle import AuditorApiSource

    token = token_file.read_text(encoding="utf-8").strip() if token_file else os.environ.get("XSN_AUDIT_TOKEN", "")
    if not token:
        raise click.ClickException("no token: pass --token-file or set XSN_AUDIT_TOKEN (scope audit:read)")
    _write_bundle(AuditorApiSource(url, token), out, key_out, start=start, end=end, tree_size=tree_size,
                  consistency_from=consistency_from)


@log_group.command("verify")
@click.option("--bundle", "bundle_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="export bundle, or a saved GET /log/entries/{index} response")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="the pinned log public key (PEM), obtained out of band")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a saved checkpoint to verify against instead of the bundle's")
@click.option("--older", "older_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="an older saved checkpoint the log must be consistent with")
@click.option("--trusted-root", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the seal maker's root certificate (DER or PEM) to pin for SES signatures")
@click.option("--no-signatures", is_flag=True, help="skip checking each entry's own SES signature")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def verify_command(bundle_path: Path, key_path: Path, checkpoint_path: Path | None, older_path: Path | None,
                   trusted_root: Path | None, no_signatures: bool, as_json: bool) -> None:
    """Verify log evidence offline. Exit 0: every check passed; 1: a check failed; 2: unreadable input."""

    def check() -> Report:
        return verify_bundle(
            read_bundle(bundle_path.read_bytes()), key_path.read_bytes(),
            saved_checkpoint=checkpoint_path.read_text(encoding="utf-8") if checkpoint_path else None,
            older_checkpoint=older_path.read_text(encoding="utf-8") if older_path else None,
            check_signatures=not no_signatures,
            trusted_root_cert_der=_read_cert(trusted_root) if trusted_root else None)

    verify_and_exit(check, as_json=as_json)


def _read_cert(path: Path) -> bytes:
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        import base64

        lines = [line for line in data.decode("ascii", "replace").splitlines() if line and not line.startswith("-----")]
        try:
            return base64.b64decode("".join(lines), validate=True)
        except ValueError:
            raise BundleError("the trusted root is not a PEM certificate") from None
    return data
