"""SMTP sink for the embedded setup: accepts every mail (aiosmtpd) and keeps it as a file.

Each message is written to ``<var>/mail/<time>-<id>.eml`` (written to a temporary name and
renamed, so a reader never sees half a file). Read them with ``xsn messaging mail`` or
:func:`read_mailbox`. Run: ``python -m messaging.smtp_sink --port 8025``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import threading
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller

from common.config import var_dir


class FileHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        tmp = self.directory / f".{name}.tmp"
        header = f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        tmp.write_bytes(header + envelope.original_content)
        os.replace(tmp, self.directory / f"{name}.eml")
        return "250 Message accepted for delivery"


def mailbox_dir(base: Path | None = None) -> Path:
    return (base or var_dir()) / "mail"


def read_mailbox(directory: Path) -> list[email.message.EmailMessage]:
    """Every stored mail, oldest first."""
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(directory.glob("*.eml"))]


def start(port: int, directory: Path) -> Controller:
    controller = Controller(FileHandler(directory), hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    directory = args.dir or mailbox_dir()
    controller = start(args.port, directory)
    print(f"SMTP sink on 127.0.0.1:{args.port}, mail kept in {directory}", flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
