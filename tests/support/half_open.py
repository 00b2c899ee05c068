"""Clients an attacker would be: connections that start a request and never finish its head."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def half_open_heads(host: str, port: int, host_header: str, path: str, count: int) -> Iterator[None]:
    """``count`` connections to ``host:port``, each having sent a request line and the start of
    a header, and nothing more (finding 1 of the gateway issue: two such stalled the old
    gateway); all closed on exit."""
    idle: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nX-Partial: ".encode())
            idle.append(sock)
        yield
    finally:
        for sock in idle:
            sock.close()
