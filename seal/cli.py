"""``xsn seal ...`` commands (the log commands live in :mod:`seal.log_cli`)."""

from seal.log_cli import cli

__all__ = ["cli"]
