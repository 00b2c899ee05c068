"""Demo seals (idempotent): the demo organisation's seals and the departments', granted to the service clients.

The organisation is the one identity seeds (``identity.seed.DEMO_ORGANISATION``: 西安市示范科技有限公司,
credit code ``CreditCode.build("91610113MA6TXX001")``); it is repeated here rather than imported
because each service is deployed on its own. The grantees are the client-credentials clients
identity's ``oauth.seed`` registers for the licences and payment nodes.

The departments' seals are the ones the new nodes sign with: licences are sealed with the
issuing department's ``license`` seal (the departments of ``licenses.config``), e-receipts
with the collecting department's ``finance`` seal (``payment.config`` PAYMENT_DEPARTMENTS).
Their names and codes are repeated here for the same reason.
"""

from __future__ import annotations

import structlog
from flask import Flask
from sqlalchemy import select

from common.crypto.keystore import load_kek
from common.db import get_db
from common.values.codes import CreditCode
from seal import certificates, grants, seals
from seal.models import Seal

logger = structlog.get_logger("xsn.seal.seed")

DEMO_ORG_NAME = "西安市示范科技有限公司"
DEMO_ORG_CODE = CreditCode.build("91610113MA6TXX001").value
LICENSES_CLIENT = "xsn-licenses"
PAYMENT_CLIENT = "xsn-payment"
# kind -> clients granted
DEMO_SEALS: dict[str, tuple[str, ...]] = {
    "official": (LICENSES_CLIENT, PAYMENT_CLIENT),
    "contract": (LICENSES_CLIENT, PAYMENT_CLIENT),
    "license": (LICENSES_CLIENT,),
    "finance": (PAYMENT_CLIENT,),
}
# (department name, credit code, kind) -> clients granted
DEPARTMENT_SEALS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("西安市行政审批服务局", CreditCode.build("11610100MB0X00001").value, "license"): (LICENSES_CLIENT,),
    ("西安市公安局", CreditCode.build("11610100MB0X00002").value, "license"): (LICENSES_CLIENT,),
    ("西安市市场监督管理局", "11610100MB29613528", "finance"): (PAYMENT_CLIENT,),
}


def seed(app: Flask) -> None:
    kek = load_kek(app.config)
    with get_db(app).session() as session:
        certificates.maker_certificate(session, kek)
        wanted = {(DEMO_ORG_NAME, DEMO_ORG_CODE, kind): grantees for kind, grantees in DEMO_SEALS.items()}
        wanted.update(DEPARTMENT_SEALS)
        for (org_name, org_code, kind), grantees in wanted.items():
            seal = session.scalars(select(Seal).where(Seal.org_code == org_code, Seal.kind == kind)).first()
            if seal is None:
                seal = seals.create_seal(session, kek, org_code=org_code, org_name=org_name, kind=kind,
                                         actor="seed", font_path=str(app.config["SEAL_FONT_PATH"] or ""))
            for client_id in grantees:
                grants.add_grant(session, seal.id, "client", client_id, actor="seed")
    logger.info("seal_seeded", seals=len(DEMO_SEALS) + len(DEPARTMENT_SEALS), org_code=DEMO_ORG_CODE)
