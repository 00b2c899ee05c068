"""Request ids, one rule for the gateway and every service: an incoming ``X-Request-Id`` is kept
when it fits ``REQUEST_ID_RE`` (so a caller's id survives the hops), otherwise a new one is made.
Flask-free, so the gateway's asyncio edge imports it without the services' web stack.

A request id is a label for correlating logs and audit records, never a secret, nonce, token or
key, nor unique: callers choose their own (any id that fits is kept, two requests may share one),
and the ids made here come from ``random``, whose output can be predicted from ~160 observed ids
(Mersenne Twister). Anything that must be unguessable takes ``secrets``.
"""

from __future__ import annotations

import random
import re

# \A...\Z, not ^...$: "$" would also accept an id ending in a newline.
REQUEST_ID_RE = re.compile(r"\A[A-Za-z0-9._:-]{8,128}\Z")


def new_request_id() -> str:
    """128 random bits as 32 hex digits: unique, not secret (see above). ``random`` is seeded from
    ``os.urandom`` once per process and again in each forked child (the module registers an
    at-fork hook), which saves the system call ``os.urandom`` makes per request."""
    return f"{random.getrandbits(128):032x}"
