"""The processes ``bench.gateway`` runs besides the gateway (started, stopped and waited for
with ``tests.support.suite``'s ``process`` and ``wait_ready``, as the end-to-end tests do): nginx as
the plain reverse proxy it compares with, and (``--unix-socket``) the upstream app under
gunicorn on a Unix domain socket (``bench._load.gunicorn`` binds a loopback port only)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bench._load import Server
from tests.support.suite import free_port, process, wait_ready

NGINX = os.environ.get("XSN_NGINX", "/usr/sbin/nginx")
NGINX_HINT = "nginx is not installed: `apt-get install nginx-light` (Debian), or set XSN_NGINX to its path"


@contextlib.contextmanager
def nginx(upstream: str, work: Path, workers: int | None = None) -> Iterator[tuple[str, int]]:
    """nginx as a plain reverse proxy of ``upstream``; ``workers`` processes (``None``: one per core)."""
    if not shutil.which(NGINX) and not os.path.exists(NGINX):
        raise SystemExit(NGINX_HINT)
    port = free_port()
    host_port = upstream.removeprefix("http://")
    temp = work / "nginx"
    temp.mkdir()
    (temp / "nginx.conf").write_text(f"""
worker_processes {workers or 'auto'};
pid {temp}/nginx.pid;
error_log {temp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {temp}/body;
  proxy_temp_path {temp}/proxy;
  fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi;
  scgi_temp_path {temp}/scgi;
  upstream app {{ server {host_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
    argv = [NGINX, "-p", str(temp), "-e", f"{temp}/error.log", "-c", str(temp / "nginx.conf"), "-g", "daemon off;"]
    with process(argv) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + "/item", proc=proc)
        yield url, proc.pid


@contextlib.contextmanager
def socket_upstream(work: Path, threads: int) -> Iterator[tuple[Server, str]]:
    """The upstream app under gunicorn (2 gthread workers) on a Unix domain socket; yields it
    (its URL: the loopback port it also binds, for readiness) and the socket's path."""
    from common.ops.launcher import gunicorn_argv

    port, path = free_port(), str(work / "upstream.sock")
    argv = gunicorn_argv("bench.gateway:upstream_app()", port, 2, "xsn-bench-unix",
                         ("--log-level", "warning", "--bind", f"unix:{path}"), threads=max(1, threads))
    argv.remove("--reuse-port")  # SO_REUSEPORT on a Unix socket: EOPNOTSUPP
    with process(argv) as proc:
        wait_ready(f"http://127.0.0.1:{port}/livez", proc=proc)
        yield Server(f"http://127.0.0.1:{port}", proc.pid), path
