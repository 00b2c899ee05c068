"""Every setting of the seal node, declared once (set them as ``XSN_<NAME>``)."""

from __future__ import annotations

from typing import Any

# The staff consoles' (manage, audit) identity client, seeded by identity (identity/oauth/seed.py).
CONSOLE_CLIENT_ID = "xsn-seal-console"

SETTINGS: dict[str, Any] = {
    # The document itself may be posted for signing/verification instead of its digest.
    "SEAL_MAX_DOCUMENT_BYTES": 512 * 1024,
    # Most digests one POST /seals/<id>/sign-batch may carry (each one signature, one log entry).
    "SEAL_SIGN_BATCH_MAX": 100,
    # A font with Chinese glyphs for generated seal pictures; empty = look for one (fontconfig,
    # Debian's CJK font packages). A path that is missing or has no Chinese glyphs = shape-only.
    "SEAL_FONT_PATH": "",
    # The signature log: checkpoint origin line and signed-note key name ...
    "SEAL_LOG_ORIGIN": "xsn.xian/seal-log",
    # ... and seconds a grown log may wait for a new checkpoint (the beat task's interval too).
    "SEAL_LOG_CHECKPOINT_INTERVAL": 5,
}
