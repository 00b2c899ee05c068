"""gunicorn server hooks of the suite's services under ``xsn run`` (``--config
python:common.ops.gunicorn_hooks``, common.ops.launcher.gunicorn_argv); the containers'
``deploy/gunicorn.conf.py`` calls ``on_starting`` from its own.

With ``--reuse-port`` the arbiter opens no socket (each worker binds its own), and gunicorn's
start-up line reads ``Listening at:  (<pid>)``: the one line saying where a service listens
said nothing. The hook fills in the bound address in that line; gunicorn is not changed.
"""

from __future__ import annotations

import logging

LISTENING_AT = "Listening at: %s (%s)"  # gunicorn.arbiter.Arbiter.start's message, unformatted


class ListeningAt(logging.Filter):
    """Puts ``addresses`` into gunicorn's ``Listening at`` line when it names no socket."""

    def __init__(self, addresses: str) -> None:
        super().__init__()
        self.addresses = addresses

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg == LISTENING_AT and isinstance(args, tuple) and len(args) == 2 and not args[0]:
            record.args = (f"{self.addresses}, a SO_REUSEPORT socket per worker", args[1])
        return True


def on_starting(server) -> None:
    """Called by the arbiter before it logs where it listens."""
    addresses = ",".join(f"http://{bind}" for bind in server.cfg.bind)
    server.log.error_log.addFilter(ListeningAt(addresses))
