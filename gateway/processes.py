"""What the gateway adds to ``xsn run`` besides its edge: the audit writer processes.

The edge only appends each request's audit record to its spool; ``python -m gateway.audit_writer``
(one process per edge process's spool, ``GATEWAY_WORKERS`` of them, read from the same
configuration as the edge) moves the records into the audit log. Until it reports, the edge's
``/readyz`` is 503, so the launcher's wait covers it.
"""

from __future__ import annotations

import sys


def processes(suite) -> dict[str, list[str]]:
    return {"gateway-audit-writer": [sys.executable, "-m", "gateway.audit_writer"]}
