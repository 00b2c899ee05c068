"""``xsn seal log ...``: publish checkpoints, export evidence bundles, verify them offline.

``checkpoint``, ``export`` and ``self-check`` run next to the database (operators); ``verify``
needs nothing but files (auditors): no network, no database.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from common.app import service_session
from seal.verify_offline import BUNDLE_FORMAT, BundleError, read_bundle, verify_bundle


@click.group()
def cli() -> None:
    """Electronic seal node (电子印章)."""


@cli.group("log")
def log_group() -> None:
    """Signature transparency log (签章日志)."""


def _session():
    return service_session("seal")


@log_group.command("checkpoint")
def checkpoint_command() -> None:
    """Sign and store a checkpoint now if the log grew (idempotent otherwise)."""
    from seal import log, log_api

    with _session() as (app, session):
        row = log.publish_checkpoint(session, log_api.signer_factory(session, app)())
        click.echo(row.note, nl=False)


@log_group.command("self-check")
def self_check_command() -> None:
    """Recompute the log from its entries and compare with nodes and checkpoints."""
    from seal import log_api

    with _session() as (app, session):
        report = log_api.run_self_check(session, app)
    click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    sys.exit(0 if report.ok else 1)


@log_group.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="bundle file to write")
@click.option("--start", type=int, default=0, show_default=True, help="first leaf index")
@click.option("--end", type=int, default=None, help="last leaf index, exclusive (default: the checkpoint size)")
@click.option("--tree-size", type=int, default=None, help="prove against this checkpoint (default: the latest)")
@click.option("--consistency-from", "consistency_from", type=int, multiple=True,
              help="also include a consistency proof from this older tree size (repeatable)")
@click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the log's public key PEM here")
def export_command(out: Path, start: int, end: int | None, tree_size: int | None,
                   consistency_from: tuple[int, ...], key_out: Path | None) -> None:
    """Write a JSON bundle: checkpoint, entries with inclusion proofs and SES signatures, log key."""
    from common.errors import Problem

    with _session() as (app, session):
        try:
            bundle = build_bundle(session, app, start=start, end=end, tree_size=tree_size,
                                  consistency_from=consistency_from)
        except Problem as exc:
            raise click.ClickException(exc.detail) from None
    out.write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n")
    if key_out is not None:
        key_out.write_text(bundle["public_key"]["pem"])
    click.echo(f"wrote {len(bundle['entries'])} entries at tree size {bundle['tree_size']} to {out}")


def build_bundle(session, app, *, start: int = 0, end: int | None = None, tree_size: int | None = None,
                 consistency_from: tuple[int, ...] = ()) -> dict:
    """:raise Problem: a bad range or an unknown checkpoint size."""
    from seal import log, log_api

    if tree_size is None:  # the whole log as of now: sign a checkpoint for it if there is none yet
        checkpoint = log.publish_checkpoint(session, log_api.signer_factory(session, app)())
    else:
        checkpoint = log.checkpoint_for_size(session, tree_size)
    size = checkpoint.tree_size
    end = size if end is None else end
    if not 0 <= start <= end <= size:
        raise log.BadRange(f"range [{start}, {end}) is not within the checkpoint's tree [0, {size})")
    entries = []
    for first in range(start, end, log.MAX_RANGE):
        for entry in log.entries_range(session, first, min(first + log.MAX_RANGE, end)):
            item = log_api.entry_dict(entry)
            item.pop("event")
            item["inclusion_proof"] = [h.hex() for h in log.inclusion_proof(session, entry.leaf_index, size)]
            entries.append(item)
    keys = log_api.keys_document(session, app)
    key = next(k for k in keys["keys"] if k["key_id"] == checkpoint.key_id)
    return {
        "format": BUNDLE_FORMAT,
        "origin": keys["origin"],
        "tree_size": size,
        "range": {"start": start, "end": end},
        "checkpoint": checkpoint.note,
        "public_key": {"pem": key["public_key_pem"], "key_hint": key["key_hint"], "key_id": key["key_id"]},
        "entries": entries,
        "consistency": [{"first": m, "second": size,
                         "proof": [h.hex() for h in log.consistency_proof(session, m, size)]}
                        for m in consistency_from],
    }


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
    try:
        bundle = read_bundle(bundle_path.read_bytes())
        root_der = _read_cert(trusted_root) if trusted_root else None
        report = verify_bundle(
            bundle, key_path.read_bytes(),
            saved_checkpoint=checkpoint_path.read_text(encoding="utf-8") if checkpoint_path else None,
            older_checkpoint=older_path.read_text(encoding="utf-8") if older_path else None,
            check_signatures=not no_signatures, trusted_root_cert_der=root_der)
    except (BundleError, UnicodeDecodeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        for step in report.steps:
            click.echo(f"{'OK  ' if step.ok else 'FAIL'} {step.name}: {step.detail}")
        click.echo("VERIFIED" if report.ok else "VERIFICATION FAILED")
    sys.exit(0 if report.ok else 1)


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
