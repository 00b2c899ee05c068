"""Demo catalogue (idempotent): a food-business licence and a business licence for
organisations, a residence permit for persons.

The departments are the demo ones of :mod:`licenses.config`. The demo holders are those
identity seeds (``identity.seed``), repeated here rather than imported because each service is
deployed on its own: the organisation 西安市示范科技有限公司 and the citizens 张三 and 李四,
whose ID numbers are built with :mod:`common.values.codes` exactly as identity builds them.
"""

from __future__ import annotations

import csv
import io
from datetime import date

import structlog
from flask import Flask

from common.db import get_db
from common.values.codes import CitizenId, CreditCode

from . import catalogue
from .config import APPROVAL_BUREAU, PUBLIC_SECURITY

log = structlog.get_logger("xsn.licenses.seed")

# Catalogue owners (国家市场监督管理总局, 公安部), demo credit codes.
SAMR = CreditCode.build("11100000MB0X00010").value
MPS = CreditCode.build("11100000MB0X00020").value

DEMO_ORGANISATION = {"name": "西安市示范科技有限公司", "credit_code": CreditCode.build("91610113MA6TXX001").value,
                     "legal_representative": "赵六"}
DEMO_PEOPLE = {
    "张三": CitizenId.build("610113", date(1990, 1, 1), 123).value,
    "李四": CitizenId.build("610102", date(1985, 6, 15), 456).value,
    "赵六": CitizenId.build("610116", date(1970, 11, 2), 321).value,
}

DEMO_TYPES: list[dict] = [
    {"code": SAMR + "001", "slug": "food_business_license", "name": "食品经营许可证",
     "name_en": "Food business licence",
     "holder_kind": "organisation", "issuers": [APPROVAL_BUREAU[1]], "validity_days": 1826, "seal_kind": "license",
     "face_prefix": "JY1", "fields": [
         {"name": "operator_name", "label": "经营者名称", "label_en": "Operator"},
         {"name": "legal_representative", "label": "法定代表人（负责人）", "label_en": "Legal representative",
          "personal": True, "max_length": 64},
         {"name": "address", "label": "住所", "label_en": "Domicile"},
         {"name": "premises", "label": "经营场所", "label_en": "Business premises"},
         {"name": "business_type", "label": "主体业态", "label_en": "Business type", "type": "enum",
          "choices": ["食品销售经营者", "餐饮服务经营者", "单位食堂"]},
         {"name": "business_scope", "label": "经营项目", "label_en": "Scope", "type": "text"},
         {"name": "supervisor", "label": "日常监督管理机构", "label_en": "Supervising authority", "required": False},
     ]},
    {"code": SAMR + "002", "slug": "business_license", "name": "营业执照", "name_en": "Business licence",
     "holder_kind": "organisation", "issuers": [APPROVAL_BUREAU[1]], "validity_days": None, "seal_kind": "license",
     "face_prefix": "YZ", "fields": [
         {"name": "company_name", "label": "名称", "label_en": "Name"},
         {"name": "company_type", "label": "类型", "label_en": "Type"},
         {"name": "legal_representative", "label": "法定代表人", "label_en": "Legal representative",
          "personal": True, "max_length": 64},
         {"name": "registered_capital", "label": "注册资本（万元）", "label_en": "Registered capital (10k yuan)",
          "type": "integer"},
         {"name": "established_on", "label": "成立日期", "label_en": "Established", "type": "date"},
         {"name": "address", "label": "住所", "label_en": "Domicile"},
         {"name": "business_scope", "label": "经营范围", "label_en": "Scope", "type": "text"},
     ]},
    {"code": MPS + "001", "slug": "residence_permit", "name": "居住证", "name_en": "Residence permit",
     "holder_kind": "person", "issuers": [PUBLIC_SECURITY[1]], "validity_days": 365, "seal_kind": "license",
     "face_prefix": "JZZ", "fields": [
         {"name": "name", "label": "姓名", "label_en": "Name", "personal": True, "max_length": 64},
         {"name": "sex", "label": "性别", "label_en": "Sex", "type": "enum", "choices": ["男", "女"], "personal": True},
         {"name": "birth_date", "label": "出生日期", "label_en": "Date of birth", "type": "date", "personal": True},
         {"name": "id_number", "label": "公民身份号码", "label_en": "ID number", "type": "citizen_id",
          "personal": True},
         {"name": "address", "label": "居住地址", "label_en": "Residence address", "personal": True},
         {"name": "issuing_office", "label": "签发机关", "label_en": "Issuing office", "required": False},
     ]},
]


def seed(app: Flask) -> None:
    with get_db(app).session() as session:
        added = 0
        for definition in DEMO_TYPES:
            try:
                catalogue.get_type(session, definition["code"])
            except catalogue.UnknownType:
                catalogue.create_type(session, definition, actor="seed")
                added += 1
    log.info("licenses_seeded", types=len(DEMO_TYPES), added=added)


FOOD_BULK_HEADER = ["holder_code", "holder_name", "operator_name", "legal_representative", "address", "premises",
                    "business_type", "business_scope"]


def demo_food_bulk_csv(count: int) -> str:
    """A bulk-issuance CSV (批量发证) of ``count`` made-up companies for the demo food-business
    licence, every row valid and distinct: for the benchmark and the tests of the bulk path."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FOOD_BULK_HEADER)
    for i in range(count):
        writer.writerow([CreditCode.build(f"91610113MA6T{i:05d}").value, f"示范企业{i}", f"示范企业{i}", "赵六",
                         "西安市雁塔区", f"科技路{i}号", "餐饮服务经营者", "热食类食品制售"])
    return out.getvalue()
