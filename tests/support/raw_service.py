"""A service that is only a socket: tests of the gateway's edge that need a service's exact bytes
(a header werkzeug would not send, a framing it would not choose)."""

from __future__ import annotations

import socket
import threading


def serve_raw(path: str, answer: bytes) -> socket.socket:
    """A service on a unix socket answering each request with ``answer`` and closing; closing
    the returned listener stops it."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head and (data := conn.recv(65536)):
                    head += data
                if head:
                    conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return listener
