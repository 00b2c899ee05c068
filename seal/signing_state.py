"""What signing needs of a seal version, prepared once per process and reused by every signature.

Per process: the ``SES_Signature`` material of each seal version (see ``ses.SigningMaterial``),
keyed by the SM3 of the ``SESeal`` DER and the signer certificate's serial, so the seal DER
(tens of KiB with its picture) is read once per version, not per signature or per batch. A new
``SESeal`` (new picture) has a new digest, hence a new entry; the DER read on a miss is checked
against the digest.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from common.crypto.gm import sm3
from common.errors import Problem
from seal import ses
from seal.certificates import certificate_der
from seal.models import Seal

_materials: dict[tuple[str, str], ses.SigningMaterial] = {}
_materials_lock = threading.Lock()
_MAX_MATERIALS = 256
_ESEAL_DER = select(Seal.eseal_der).where(Seal.id == bindparam("seal_id"))


def signing_material(session: Session, seal: Any) -> ses.SigningMaterial:
    """The material of ``seal`` (a row with ``id, es_id, eseal_sm3, signer_serial``).

    :raise Problem: (500) the stored ``SESeal`` does not match its digest.
    """
    key = (seal.eseal_sm3, seal.signer_serial)
    material = _materials.get(key)
    if material is None:
        der = session.connection().execute(_ESEAL_DER, {"seal_id": seal.id}).scalar_one()
        if sm3(der).hex() != seal.eseal_sm3:
            raise Problem(f"the stored SESeal of seal {seal.es_id} does not match its digest",
                          code="seal_integrity_error", status=500)
        material = ses.SigningMaterial(der, certificate_der(session, seal.signer_serial))
        with _materials_lock:
            if len(_materials) >= _MAX_MATERIALS:
                _materials.clear()
            _materials[key] = material
    return material
