"""The HTTP limits the gateway's edge and the services' gunicorn must agree on: imported by the
launcher (``xsn run``), the edge (gateway.edge.app) and deploy/gunicorn.conf.py. Plain Python with
nothing to import, so the edge and gunicorn's config need not load the process launcher."""

from __future__ import annotations

import os
from collections.abc import Mapping

# The longest request line a service's gunicorn accepts: the gateway's edge accepts lines up to
# GATEWAY_MAX_HEADER_BYTES (8190, also gunicorn's own ceiling) and forwards them shortened by its
# prefix, so every line it lets through reaches the service (deploy/gunicorn.conf.py the same).
MAX_REQUEST_LINE = 8190
# The edge's header limits (gateway.config: GATEWAY_MAX_HEADERS, and GATEWAY_MAX_HEADER_BYTES - 1
# for a header's name and, separately, its value), as defaults here because common imports no
# service (the import contracts); ``XSN_GATEWAY_*`` in the environment overrides both, as it does
# the edge's. tests/ops/test_launcher.py fails if these and gateway.config part ways.
EDGE_MAX_HEADERS = 100
EDGE_MAX_HEADER_BYTES = 8190
# Header fields the edge adds to what it forwards (gateway.edge.boundary forwarding_headers, five
# X-Forwarded-* / X-Request-ID, and caller_headers, at most five X-XSN-*; Host and Content-Length),
# counted in tests/ops/test_launcher.py, with room for a few more.
EDGE_ADDED_HEADERS = 12
ADDED_HEADERS_MARGIN = 16


def upstream_header_limits(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """gunicorn's ``--limit-request-fields`` and ``--limit-request-field-size`` for a service behind
    the edge: above anything the edge lets through, so that gunicorn never answers a forwarded
    request with its HTML 431 where the edge would have answered a problem document.

    Fields: the edge's ``GATEWAY_MAX_HEADERS`` plus the fields it adds (``EDGE_ADDED_HEADERS``)
    plus a margin; with gunicorn's default of 100, a request of 97-100 fields passed the edge and
    then got gunicorn's 431. Size: gunicorn counts a field's whole line (name, ``": "``, value,
    CRLF) against its limit, while the edge checks the name and the value each against
    ``GATEWAY_MAX_HEADER_BYTES - 1``; with gunicorn's default of 8190 a value of 8182-8189 bytes
    passed the edge and then got gunicorn's 431. ``environ``: where ``XSN_GATEWAY_MAX_HEADERS``
    and ``XSN_GATEWAY_MAX_HEADER_BYTES`` are read (``os.environ`` if None), as the edge reads them.

    :raise ValueError: a setting that is not an integer.
    """
    env = os.environ if environ is None else environ
    headers = int(env.get("XSN_GATEWAY_MAX_HEADERS") or EDGE_MAX_HEADERS)
    field = int(env.get("XSN_GATEWAY_MAX_HEADER_BYTES") or EDGE_MAX_HEADER_BYTES) - 1
    return (headers + EDGE_ADDED_HEADERS + ADDED_HEADERS_MARGIN,
            field + len(": ") + field + len("\r\n"))
