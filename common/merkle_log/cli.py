"""The offline ``verify`` commands' shared ending: run the check, print its steps, exit with its verdict."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import NoReturn

import click

from common.merkle_log.offline import BundleError, Report


def verify_and_exit(check: Callable[[], Report], *, as_json: bool) -> NoReturn:
    """Exit 0: every check passed; 1: a check failed; 2: unreadable input (``check`` raised
    :class:`BundleError` or could not decode a file)."""
    try:
        report = check()
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
