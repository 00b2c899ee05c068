"""The institutions' key material in the embedded run, kept under ``var/channel-sim/``.

The simulator holds the private halves (it signs as the institutions do); the payment node
reads only the public halves and the two shared secrets (the WeChat API v3 key, the bank's
HMAC key), exactly what a merchant is given by a real institution. Production configures these
through ``XSN_PAYMENT_*`` and never reads this directory.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

WECHAT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"


@dataclass(frozen=True)
class InstitutionKeys:
    wechat_private: rsa.RSAPrivateKey
    alipay_private: rsa.RSAPrivateKey
    wechat_api_v3_key: bytes
    bank_secret: bytes
    wechat_serial: str = WECHAT_SERIAL

    def public_pem(self, key: rsa.RSAPrivateKey) -> bytes:
        return key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def _create_once(path: Path, make: callable) -> bytes:
    """Write ``make()`` to ``path`` unless it exists; the first of several processes wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):
            data = path.read_bytes()
            if data:
                return data
            time.sleep(0.05)
        raise RuntimeError(f"{path} is empty") from None
    data = make()
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return data


def _rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _hex_secret() -> bytes:
    return secrets.token_hex(32).encode()


def institution_keys(var_dir: str | Path) -> InstitutionKeys:
    root = Path(var_dir) / "channel-sim"
    return InstitutionKeys(
        wechat_private=serialization.load_pem_private_key(_create_once(root / "wechat-platform.pem", _rsa_pem), None),
        alipay_private=serialization.load_pem_private_key(_create_once(root / "alipay.pem", _rsa_pem), None),
        wechat_api_v3_key=bytes.fromhex(_create_once(root / "wechat-apiv3.hex", _hex_secret).decode()),
        bank_secret=bytes.fromhex(_create_once(root / "bank-secret.hex", _hex_secret).decode()),
    )
