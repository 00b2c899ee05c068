"""The node's side of offline codes: its signing key, codes for authorisations, the lists.

The key is an SM2 key of the key store (purpose ``offline-code``), encrypted under the KEK;
rotation (``xsn licenses rotate-offline-key``) keeps retired keys in the trust list so codes
and status lists they signed still verify until they expire.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.crypto.keystore import KeyStore
from common.db import utcnow
from common.errors import Problem

from . import issuing, offline_codes
from .authorisations import LicenceNotUsable, get_own
from .holders import Holder
from .issuing import Deps
from .models import VALID, Counter, Licence, LicenceType, SigningKey
from .verification import licence_summary

PURPOSE = "offline-code"


class AuthorisationNotUsable(Problem):
    status, code, title = 409, "authorisation_not_usable", "The authorisation can no longer be used"


def keystore(session: Session, kek: bytes) -> KeyStore:
    return KeyStore(session, SigningKey, kek)


def signing_key(session: Session, kek: bytes):
    store = keystore(session, kek)
    row = store.active(PURPOSE, create=False)
    if row is None:
        # First use: keep the key. Two first uses at once make two active keys; both are in the
        # trust list (public_keys lists every key) and the newest signs from then on.
        row = store.generate(PURPOSE)
        session.commit()
    return store.private_key(row.kid)


def trust_list(session: Session, kek: bytes, issuer: str) -> dict[str, Any]:
    store = keystore(session, kek)
    if store.active(PURPOSE, create=False) is None:
        signing_key(session, kek)
    return offline_codes.trust_list_json(issuer, [(store.public_key(row), row.status)
                                                  for row in store.public_keys(PURPOSE)])


def status_list(session: Session, kek: bytes, min_bits: int) -> dict[str, Any]:
    invalid = list(session.scalars(select(Licence.status_index).where(Licence.status != VALID)))
    allocated = session.get(Counter, "status_index")
    size = max(min_bits, allocated.value if allocated else 0)
    return offline_codes.status_list_json(invalid, size, signing_key(session, kek))


def code_for(session: Session, deps: Deps, kek: bytes, holder: Holder, authorisation_id: str, *,
             issuer: str, lifetime: int) -> tuple[str, int]:
    """A signed offline code carrying what the authorisation allows; ``(code, expires_at unix)``.

    The code lives at most ``lifetime`` seconds and never beyond the authorisation.
    """
    auth = get_own(session, deps, holder, authorisation_id)
    row = session.get(Licence, auth.licence_id)
    if auth.status != "active" or auth.expires_at <= utcnow() or auth.uses >= auth.max_uses:
        raise AuthorisationNotUsable("the authorisation is revoked, expired or used up")
    if row.status != VALID:
        raise LicenceNotUsable(f"a {row.status} licence gets no offline code")
    licence_type = session.get(LicenceType, row.type_code)
    summary = licence_summary(row, licence_type)
    face = issuing.face_of(deps, row)
    claims = {"id": row.identifier, "t": row.type_code, "tn": licence_type.name, "n": row.face_number,
              "i": row.issuer_name, "h": summary["holder"]["name"], "hc": row.holder_code_masked,
              "vf": row.valid_from.isoformat(), "vu": row.valid_until.isoformat() if row.valid_until else None,
              "f": {name: face[name] for name in auth.fields if name in face}, "p": auth.purpose,
              "s": row.status_index}
    remaining = int(auth.expires_at.timestamp() - time.time())
    life = max(1, min(lifetime, remaining))
    code = offline_codes.make_code(claims, signing_key(session, kek), issuer=issuer, lifetime=life)
    return code, int(time.time()) + life
