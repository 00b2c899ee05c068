"""``xsn seal ...`` commands: the signature log's (:mod:`seal.log.cli`) under ``xsn seal log``."""

from __future__ import annotations

import click

from seal.log.cli import log_group


@click.group()
def cli() -> None:
    """Electronic seal node (电子印章)."""


cli.add_command(log_group)
