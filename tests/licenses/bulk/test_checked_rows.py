"""Bulk rows are issued from the values checked (and sealed) at the upload: checked again when
the type changed since, never trusted when copied from another row, refused for a retired type."""

from __future__ import annotations

import json
from datetime import date

import pytest

from licenses.models import BulkJob, Licence
from tests.licenses.bulk.job_steps import residents_csv, upload


def test_rows_are_issued_from_their_values_checked_at_upload_starting_on_the_day_of_issue(h, app, node, monkeypatch):
    """The runner does not check a row again (its values were checked and sealed at the upload),
    and a row naming no start date starts on the day it is issued, not on the day of the upload."""
    from datetime import timedelta

    from sqlalchemy import select

    from common.db import get_db
    from licenses import issuing

    job_id = upload(h, residents_csv(4)).get_json()["id"]
    later = date(2031, 3, 1)
    monkeypatch.setattr(issuing, "today", lambda: later)

    def no_second_check(*args, **kwargs):
        raise AssertionError("a row checked at upload was checked again")

    monkeypatch.setattr(issuing, "check_request", no_second_check)
    ran = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"]) == ("done", 4)
    with get_db(app).session() as session:
        licences = list(session.scalars(select(Licence)))
    assert {(lic.valid_from, lic.valid_until) for lic in licences} == {(later, later + timedelta(days=364))}
    documents = [json.loads(issuing.document_of(node["deps"], lic)) for lic in licences]
    assert {d["issue_date"] for d in documents} == {later.isoformat()}
    assert sorted(d["fields"]["address"] for d in documents) == [f"西安市雁塔区{i}号" for i in range(4)]


def test_rows_are_checked_again_when_the_type_changed_since_the_upload_or_have_no_checked_values(h, app, node):
    from common.db import get_db
    from licenses.models import BulkRow, LicenceType

    changed = upload(h, residents_csv(3)).get_json()["id"]
    older = upload(h, residents_csv(2)).get_json()["id"]
    with get_db(app).session() as session:
        for row in session.query(BulkRow).filter_by(job_id=older):
            row.payload = {"enc": row.payload["enc"]}  # as an upload before checked values were kept
        licence_type = session.get(LicenceType, session.get(BulkJob, changed).type_code)
        licence_type.fields = [*licence_type.fields, {"name": "permit_class", "label": "类别", "required": True}]
        session.commit()
    ran = h.client.post(f"/bulk-jobs/{changed}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["invalid"]) == ("done", 0, 3)
    assert {e["code"] for e in ran["errors"]} == {"invalid_fields"} and "permit_class" in ran["errors"][0]["reason"]
    with get_db(app).session() as session:  # the type as it was: the older rows pass their full check
        licence_type = session.get(LicenceType, session.get(BulkJob, older).type_code)
        licence_type.fields = [f for f in licence_type.fields if f["name"] != "permit_class"]
        session.commit()
    ran = h.client.post(f"/bulk-jobs/{older}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["invalid"]) == ("done", 2, 0)


@pytest.mark.parametrize("source", ["another_job", "another_line"])
def test_checked_values_copied_from_another_row_are_not_trusted(h, app, node, source):
    """A row's checked values are bound to its job and line: a blob copied into another row (of
    another job, or another line of the same job) does not decrypt there, and the row is checked
    in full from its own payload, which here does not pass, so nothing unchecked is issued."""
    from common.db import get_db
    from licenses.models import BulkRow

    cipher = node["deps"].cipher
    donor = upload(h, residents_csv(2)).get_json()["id"]
    target, line = (donor, 3) if source == "another_line" else (upload(h, residents_csv(2)).get_json()["id"], 2)
    with get_db(app).session() as session:
        row = session.get(BulkRow, (target, line))
        item = json.loads(cipher.decrypt("bulk_row", row.payload["enc"]))
        item["holder_code"] = "610113198001010000"  # a wrong check digit: this row's own request fails
        row.payload = {"enc": cipher.encrypt("bulk_row", json.dumps(item, ensure_ascii=False)),
                       "checked": session.get(BulkRow, (donor, 2)).payload["checked"]}
        session.commit()
    ran = h.client.post(f"/bulk-jobs/{target}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["invalid"]) == ("done", 1, 1)
    assert [(e["line"], e["code"]) for e in ran["errors"]] == [(line, "invalid_citizen_id")]
    assert h.count(Licence) == 1


def test_a_rows_checked_values_depend_on_the_type_code():
    """Two types alike but for their code have different definitions: values checked for one
    are not taken for the other (:func:`licenses.bulk.checked_rows.definition_of`)."""
    from types import SimpleNamespace

    from licenses.bulk.checked_rows import definition_of

    fields = [{"name": "address", "label": "住址", "required": True}]
    one = SimpleNamespace(code="residence_permit", holder_kind="person", fields=fields)
    other = SimpleNamespace(code="residence_permit_copy", holder_kind="person", fields=fields)
    assert definition_of(one) != definition_of(other)
    assert definition_of(one) == definition_of(SimpleNamespace(**vars(one)))


def test_rows_of_a_retired_type_are_refused_each_with_its_line(h, app):
    from common.db import get_db
    from licenses.models import LicenceType

    job_id = upload(h, residents_csv(3)).get_json()["id"]
    with get_db(app).session() as session:
        session.get(LicenceType, session.get(BulkJob, job_id).type_code).status = "retired"
        session.commit()
    ran = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["invalid"]) == ("done", 0, 3)
    assert [(e["line"], e["code"]) for e in ran["errors"]] == [(2, "licence_type_retired"), (3, "licence_type_retired"),
                                                              (4, "licence_type_retired")]
