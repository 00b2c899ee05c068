"""``xsn gateway ...`` commands; the audit log's are also ``xsn audit ...`` (:mod:`gateway.audit.cli`)."""

from __future__ import annotations

import click

from gateway.audit.cli import audit


@click.group()
def cli() -> None:
    """API gateway (统一接入网关)."""


cli.add_command(audit)
TOP_LEVEL = (audit,)  # `xsn audit verify`: named after what an auditor works on
