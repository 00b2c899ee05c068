"""Settings of the licences node (each overridable by ``XSN_<KEY>``) and who may issue what.

**Which department a token issues for** (a department is a credit code in a type's
``issuers``):

* a service client (client-credentials token, ``sub == client_id``): the department
  ``LICENSES_ISSUER_CLIENTS[client_id]`` (a configured map; a department's own system is
  registered at identity as a client and mapped here);
* a person (staff token with the ``staff`` scope): identity puts the person's active staff
  grants in the ``roles`` claim (``[{"department", "role", "params"}]``); a grant with role
  ``license_issuer`` whose department name is in ``LICENSES_DEPARTMENTS`` issues for that
  department's credit code, limited to the type slugs in ``params.license_types`` when given.

A token that maps to several departments must name one (``issuer_code`` in the request).
"""

from __future__ import annotations

from typing import Any

from common.values.codes import CreditCode

from .processes import GUNICORN_THREADS

# Demo departments (credit codes of government bodies start with 11: 机关).
APPROVAL_BUREAU = ("西安市行政审批服务局", CreditCode.build("11610100MB0X00001").value)
PUBLIC_SECURITY = ("西安市公安局", CreditCode.build("11610100MB0X00002").value)
CIVIL_AFFAIRS = ("西安市民政局", CreditCode.build("11610100MB0X00003").value)
DEMO_DEPARTMENTS = dict((APPROVAL_BUREAU, PUBLIC_SECURITY, CIVIL_AFFAIRS))

SETTINGS: dict[str, Any] = {
    # department name (as in identity's staff grants) -> credit code
    "LICENSES_DEPARTMENTS": DEMO_DEPARTMENTS,
    # service client id -> the department credit code it issues for
    "LICENSES_ISSUER_CLIENTS": {"xsn-licenses-demo-issuer": APPROVAL_BUREAU[1]},
    # verifying service client id -> the organisation (credit code) it verifies for
    "LICENSES_VERIFIER_CLIENTS": {},
    # how this node reaches its peers: "http" (the seal node, the message hub, identity) or
    # "memory" (in-process implementations: tests and a node run on its own)
    "LICENSES_SEAL_CLIENT": "http",
    "LICENSES_NOTIFIER": "hub",
    "LICENSES_HOLDER_DIRECTORY": "identity",
    # this node's client-credentials client at identity; the secret comes from
    # XSN_LICENSES_CLIENT_SECRET, or in the embedded setup from var/clients.json (identity's seed)
    "LICENSES_CLIENT_ID": "xsn-licenses",
    "LICENSES_CLIENT_SECRET": None,
    # the holders' pages (licenses.holder_pages) sign people in through identity with this
    # client (code + PKCE; its secret as every console's: XSN_CONSOLE_CLIENT_SECRET or clients.json)
    "LICENSES_HOLDER_CLIENT_ID": "xsn-licenses-holder",
    # online verification's own PostgreSQL connections per worker process, at most (opened as
    # requests need them: one per request being verified, so as many as the worker's threads;
    # more threads than this wait for a connection). See verification_store.Stores. By default
    # the threads xsn run gives a worker (processes.GUNICORN_THREADS, 16); a deployment that sets
    # other threads (XSN_LICENSES_GUNICORN_THREADS, gunicorn --threads) sets this to match.
    "LICENSES_VERIFY_POOL_SIZE": GUNICORN_THREADS,
    # known codes' takes of concurrent verifications share one statement and commit
    # (licenses.take_groups); false: each its own
    "LICENSES_VERIFY_GROUP_TAKES": True,
    # a seal's verification result is cached this long (seconds): a seal revoked at the seal
    # node is refused by online verification at most this much later
    "LICENSES_SEAL_VERIFY_CACHE_SECONDS": 60,
    # authorisations: bounds on their life and use count
    "LICENSES_AUTH_MIN_MINUTES": 1,
    "LICENSES_AUTH_MAX_MINUTES": 30 * 24 * 60,
    "LICENSES_AUTH_MAX_USES": 1000,
    # offline codes (QR): lifetime in seconds, and the size of the published status list in bits
    "LICENSES_OFFLINE_CODE_SECONDS": 600,
    "LICENSES_STATUS_LIST_BITS": 131072,
    # bulk issuance: rows per job, rows per seal batch (the seal node's SEAL_SIGN_BATCH_MAX)
    "LICENSES_BULK_MAX_ROWS": 20000,
    "LICENSES_BULK_BATCH": 100,
    # batches the seal node may be signing at once for one job (its workers sign in parallel)
    "LICENSES_BULK_INFLIGHT": 2,
    # a runner's lease on a job (renewed every batch): a killed runner's job can be resumed
    # this long after its last batch; POST /bulk-jobs/<id>/run works at most RUN_SECONDS per call
    "LICENSES_BULK_LEASE_SECONDS": 60,
    "LICENSES_BULK_RUN_SECONDS": 20,
}
