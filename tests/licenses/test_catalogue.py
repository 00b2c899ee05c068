"""The catalogue: type definitions, face validation, the admin API and CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from common.values.codes import CreditCode
from licenses import catalogue
from licenses.models import LicenceType

OWNER = CreditCode.build("11100000MB0X00030").value


def _definition(**overrides) -> dict:
    body = {"code": OWNER + "001", "slug": "marriage_certificate", "name": "结婚证", "holder_kind": "person",
            "issuers": [CreditCode.build("11610100MB0X00003").value],
            "validity_days": None, "face_prefix": "J",
            "fields": [{"name": "spouse_name", "label": "配偶姓名", "personal": True},
                       {"name": "registered_on", "label": "登记日期", "type": "date"},
                       {"name": "spouse_id", "label": "配偶身份证号", "type": "citizen_id", "personal": True}]}
    body.update(overrides)
    return body


def test_admin_adds_a_type_and_anyone_reads_the_catalogue(h):
    response = h.client.post("/types", json=_definition(), headers=h.admin)
    assert response.status_code == 201, response.get_json()
    listed = {t["slug"] for t in h.client.get("/types").get_json()}
    assert {"food_business_license", "residence_permit", "marriage_certificate"} <= listed
    one = h.client.get("/types/marriage_certificate").get_json()
    assert one["fields"][2]["type"] == "citizen_id" and one["fields"][0]["personal"] is True


BAD_TYPES = [
    ({"code": "123"}, "invalid_licence_type"),
    ({"code": "91610113MA6TXX0010001"}, "invalid_licence_type"),  # owner part fails its check character
    ({"holder_kind": "animal"}, "validation_failed"),
    ({"issuers": ["not-a-code"]}, "invalid_licence_type"),
    ({"issuers": []}, "invalid_licence_type"),
    ({"fields": []}, "invalid_licence_type"),
    ({"fields": [{"name": "Bad Name", "label": "x"}]}, "invalid_licence_type"),
    ({"fields": [{"name": "a", "label": "x", "type": "colour"}]}, "invalid_licence_type"),
    ({"fields": [{"name": "a", "label": "x", "type": "enum"}]}, "invalid_licence_type"),
    ({"fields": [{"name": "a", "label": "x", "pattern": "("}]}, "invalid_licence_type"),
    ({"fields": [{"name": "a", "label": "x"}, {"name": "a", "label": "y"}]}, "invalid_licence_type"),
    ({"validity_days": 0}, "invalid_licence_type"),
]


@pytest.mark.parametrize(("change", "code"), BAD_TYPES)
def test_bad_type_definitions_are_refused(h, change, code):
    before = h.count(LicenceType)
    response = h.client.post("/types", json=_definition(**change), headers=h.admin)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] == code
    assert h.count(LicenceType) == before


def test_duplicate_and_scope(h):
    assert h.client.post("/types", json=_definition(), headers=h.admin).status_code == 201
    again = h.client.post("/types", json=_definition(), headers=h.admin)
    assert again.status_code == 409 and again.get_json()["code"] == "licence_type_exists"
    other = _definition(code=OWNER + "002", slug="x_y")
    assert h.client.post("/types", json=other, headers=h.issuer).status_code == 403
    assert h.client.get("/types/nothing_here").get_json()["code"] == "unknown_licence_type"


def test_retired_types_issue_nothing(h):
    assert h.client.post(f"/types/{h.FOOD}/status", json={"status": "retired"}, headers=h.admin).status_code == 200
    response = h.issue_food()
    assert response.status_code == 409 and response.get_json()["code"] == "licence_type_retired"


def test_update_keeps_code_and_slug(h):
    definition = _definition()
    h.client.post("/types", json=definition, headers=h.admin)
    response = h.client.put(f"/types/{definition['code']}", headers=h.admin,
                            json=_definition(name="结婚证（新版）", code="ignored", slug="ignored"))
    assert response.status_code == 200
    assert response.get_json()["name"] == "结婚证（新版）" and response.get_json()["slug"] == "marriage_certificate"


def test_face_validation_normalises(app):
    from common.db import get_db

    with get_db(app).session() as session:
        licence_type = catalogue.get_type(session, "residence_permit")
        face = catalogue.validate_face(licence_type, {"name": " 张三 ", "sex": "男", "birth_date": "1990-01-01",
                                                      "id_number": "  " + h_zhang().lower() + " ",
                                                      "address": "西安"})
        assert face["name"] == "张三" and face["id_number"] == h_zhang()
        with pytest.raises(catalogue.InvalidFields) as caught:
            catalogue.validate_face(licence_type, {"name": 5, "sex": "未知", "birth_date": "1990-02-30",
                                                   "id_number": "123", "address": "x" * 201})
        assert set(caught.value.extra["errors"]) == {"name", "sex", "birth_date", "id_number", "address"}
        assert catalogue.personal_fields(licence_type) == {"name", "sex", "birth_date", "id_number", "address"}


def h_zhang() -> str:
    from licenses.seed import DEMO_PEOPLE

    return DEMO_PEOPLE["张三"]


def test_cli_lists_and_adds_types(app, tmp_path, monkeypatch):
    from licenses.cli import cli

    monkeypatch.setenv("XSN_LICENSES_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("XSN_KEK", app.config["KEK"])
    runner = CliRunner()
    path = tmp_path / "type.json"
    path.write_text(json.dumps(_definition(), ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(cli, ["types", "add", str(path)])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(cli, ["types", "list"])
    assert "marriage_certificate" in listed.output and "food_business_license" in listed.output
    again = runner.invoke(cli, ["types", "add", str(path)])
    assert again.exit_code != 0 and "licence_type_exists" in again.output
