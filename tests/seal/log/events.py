"""Log events and a log filled with them, shared by the tests of the log's domain modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import rfc8785

from common.crypto import merkle
from common.crypto.gm import SM2PrivateKey, sm3
from seal.log import appends, checkpoints
from tests.conftest import TEST_KEK

ORIGIN = "xsn.test/seal-log"


def cli_env(app, tmp_path) -> dict[str, str]:
    """The environment under which ``xsn`` reaches the same database and key store as ``app``
    (a log of origin ``ORIGIN``), with a var dir of its own under ``tmp_path``."""
    return {"XSN_SEAL_DATABASE_URL": app.config["DATABASE_URL"], "XSN_KEK": TEST_KEK,
            "XSN_VAR_DIR": str(tmp_path / "cli-var"), "XSN_SEAL_LOG_ORIGIN": ORIGIN}


def event(i: int, **overrides) -> dict:
    base = {"type": "sign", "time": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i)).isoformat(),
            "seal_id": f"seal-{i % 3}", "seal_code": f"6101000000{i % 3:06d}", "org_code": "91610100MA6TG8XX0X",
            "signer": f"staff-{i % 2}", "client_id": "licenses", "document_digest": sm3(b"doc %d" % i).hex(),
            "signature_digest": sm3(b"sig %d" % i).hex(), "request_id": f"req-{i}"}
    base.update(overrides)
    return base


def append_sample(session, i: int) -> int:
    """Append ``event(i)`` with the stand-in signature its ``signature_digest`` is the SM3 of,
    stored with the entry as signatures logged before seal_0007 were (the self-check wants the
    signature of every sign entry); its leaf index."""
    return appends.append_event(session, event(i), ses_der=b"sig %d" % i)


def fill(session, n: int, start: int = 0) -> merkle.MemoryTree:
    tree = merkle.MemoryTree()
    for i in range(start, start + n):
        index = append_sample(session, i)
        assert index == i
        tree.append(rfc8785.dumps(event(i)))
    session.commit()
    return tree


def signer() -> checkpoints.LogSigner:
    return checkpoints.LogSigner(origin=ORIGIN, key_id="test-key", private_key=SM2PrivateKey.generate())
