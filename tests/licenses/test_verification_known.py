"""A code whose licence was verified lately is verified in one statement on PostgreSQL, with
every check still made on each call (licenses.verification._verify_known)."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from sqlalchemy import select

from common.db import get_db
from common.peers.seal_client import SealCheck
from licenses import issuing, verification_store
from licenses.models import Authorisation, Licence, LicenceType, UseRecord

pytestmark = pytest.mark.services


@pytest.fixture
def calls(postgres_url, monkeypatch):
    """How many times each of the store's statements was sent."""
    sent: Counter[str] = Counter()
    for name in ("lookup", "take", "take_known", "refuse"):
        original = getattr(verification_store.PostgresStore, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            sent[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(verification_store.PostgresStore, name, counted)
    return sent


def _verify(h, code, headers=None):
    return h.client.post("/verify", json={"code": code}, headers=headers or h.window)


def _state(h, code):
    with get_db(h.app).session() as session:
        uses = session.scalar(select(Authorisation.uses).where(Authorisation.code == code))
        auth_id = session.scalar(select(Authorisation.id).where(Authorisation.code == code))
        records = [tuple(r) for r in session.execute(select(UseRecord.outcome, UseRecord.reason)
                                                     .where(UseRecord.authorisation_id == auth_id)
                                                     .order_by(UseRecord.id))]
    return uses, records


def test_a_known_code_takes_one_statement_and_answers_as_the_first_verification(h, calls):
    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    first = _verify(h, code)
    assert first.status_code == 200 and calls == {"lookup": 1, "take": 1}
    calls.clear()
    second = _verify(h, code)
    assert second.status_code == 200, second.get_json()
    assert calls == {"take_known": 1}
    one, two = first.get_json(), second.get_json()
    assert two["authorisation"]["uses"] == 2 and one["authorisation"]["uses"] == 1
    one["authorisation"]["uses"] = two["authorisation"]["uses"]
    one["checks"]["authorisation"]["detail"] = two["checks"]["authorisation"]["detail"]
    assert two == one
    assert two["checks"]["authorisation"]["detail"].startswith("2 of 3 uses")
    assert _state(h, code) == (2, [("accepted", None), ("accepted", None)])
    assert _verify(h, code).status_code == 200
    used_up = _verify(h, code)  # the count is judged by the statement: no fourth use
    assert used_up.status_code == 410 and used_up.get_json()["code"] == "authorisation_used_up"
    assert _state(h, code) == (3, [("accepted", None)] * 3 + [("refused", "authorisation_used_up")])


def test_a_known_code_from_another_window_is_refused_and_takes_nothing(h, calls):
    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    assert _verify(h, code).status_code == 200
    other = h.bearer(sub="other-window", client_id="other-window", scope="licenses:verify")
    refused = _verify(h, code, other)
    assert refused.status_code == 403 and refused.get_json()["code"] == "wrong_audience"
    assert _state(h, code) == (1, [("accepted", None), ("refused", "wrong_audience")])
    calls.clear()
    assert _verify(h, code).status_code == 200
    assert calls == {"take_known": 1}  # the other window's try left the code's entry in place


def test_a_known_code_whose_seal_verdict_turned_is_refused_and_takes_nothing(h, calls, monkeypatch):
    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    assert _verify(h, code).status_code == 200
    seal = h.app.extensions["licenses"]["deps"].seal
    revoked = SealCheck(False, {"seal": {"ok": False, "detail": "revoked"}})
    monkeypatch.setattr(seal, "verify", lambda *args, **kwargs: revoked)
    calls.clear()
    refused = _verify(h, code)
    assert refused.status_code == 409 and refused.get_json()["code"] == "seal_signature_invalid"
    assert "take_known" not in calls and "take" not in calls
    assert _state(h, code) == (1, [("accepted", None), ("refused", "seal_signature_invalid")])


@pytest.mark.parametrize(("change", "refusal"), [
    ({"status": "suspended"}, "licence_suspended"),
    ({"valid_until": date(2000, 1, 1), "valid_from": date(1999, 1, 1)}, "licence_expired"),
    ({"issuer_name": "another name"}, None),  # another version of the row: verified from the start
])
def test_a_known_code_whose_licence_changed_is_verified_from_the_start(h, calls, change, refusal):
    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    assert _verify(h, code).status_code == 200
    with get_db(h.app).session() as session:
        row = session.get(Licence, permit["id"])
        for column, value in change.items():
            setattr(row, column, value)
        session.commit()
    calls.clear()
    response = _verify(h, code)
    assert calls["take_known"] == 1 and calls["lookup"] == 1  # the statement wrote nothing; then the full path
    if refusal:
        assert response.status_code == 409 and response.get_json()["code"] == refusal
        assert _state(h, code) == (1, [("accepted", None), ("refused", refusal)])
    else:
        assert response.status_code == 200 and response.get_json()["licence"]["issuer"]["name"] == "another name"
        assert _state(h, code) == (2, [("accepted", None)] * 2)


def test_a_known_code_whose_licence_type_changed_is_verified_from_the_start(h, calls):
    """The answer's type name and field labels are the lookup's: the statement takes a use only
    while the type row is the version read then."""
    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    assert _verify(h, code).status_code == 200
    with get_db(h.app).session() as session:
        licence_type = session.get(LicenceType, session.get(Licence, permit["id"]).type_code)
        licence_type.name = "另一个名称"
        session.commit()
    calls.clear()
    response = _verify(h, code)
    assert calls["take_known"] == 1 and calls["lookup"] == 1  # the statement wrote nothing; then the full path
    assert response.status_code == 200 and response.get_json()["licence"]["type_name"] == "另一个名称"
    calls.clear()
    again = _verify(h, code)
    assert calls == {"take_known": 1} and again.get_json()["licence"]["type_name"] == "另一个名称"
    assert _state(h, code) == (3, [("accepted", None)] * 3)


def test_a_known_code_revoked_by_its_holder_takes_nothing(h, calls):
    """Revocation is the one change of an authorisation's row besides its count; the statement
    checks its status, so the cached columns of a row it takes from are the current ones."""
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], max_uses=3).get_json()
    assert _verify(h, auth["code"]).status_code == 200
    assert h.client.delete(f"/my/authorisations/{auth['id']}", headers=h.holder("p-zhang")).status_code == 200
    calls.clear()
    refused = _verify(h, auth["code"])
    assert refused.status_code == 410 and refused.get_json()["code"] == "authorisation_revoked"
    assert calls["take_known"] == 1 and calls["lookup"] == 1
    assert _state(h, auth["code"]) == (1, [("accepted", None), ("refused", "authorisation_revoked")])


@pytest.mark.parametrize("column, value, shown", [
    ("fields", ["name"], lambda answer: sorted(answer["fields"]) == ["name"]),
    ("purpose", "另一个事由", lambda answer: answer["purpose"] == "另一个事由"),
    ("max_uses", 4, lambda answer: answer["authorisation"]["max_uses"] == 4),
])
def test_a_known_code_whose_authorisation_changed_is_verified_from_the_start(h, calls, column, value, shown):
    """The cache is per process, so nothing can clear it when an authorisation's row changes
    elsewhere (an admin tool, another worker): the statement takes a use only while the columns
    the answer shows are the ones read, and a changed row goes through the full path."""
    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    assert _verify(h, code).status_code == 200
    with get_db(h.app).session() as session:
        auth = session.scalar(select(Authorisation).where(Authorisation.code == code))
        setattr(auth, column, value)
        session.commit()
    calls.clear()
    response = _verify(h, code)
    assert calls["take_known"] == 1 and calls["lookup"] == 1  # the statement wrote nothing; then the full path
    assert response.status_code == 200 and shown(response.get_json())
    calls.clear()
    again = _verify(h, code)
    assert calls == {"take_known": 1} and again.status_code == 200 and shown(again.get_json())
    assert _state(h, code) == (3, [("accepted", None)] * 3)


def test_a_known_codes_answers_keep_the_cached_rows_as_they_were_read(h, calls):
    """Later answers take the authorisation's and the licence's columns from the cache; each
    request gets its own count, and the cached rows are left as they were."""
    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=5).get_json()["code"]
    first = _verify(h, code).get_json()
    known = h.app.extensions["licenses"]["stores"].verified.get(code)
    assert known.found[0].uses == 0 and known.found[1].document_enc is None
    answers = [_verify(h, code).get_json() for _ in range(3)]
    assert calls["take_known"] == 3 and known.found[0].uses == 0
    assert [a["authorisation"]["uses"] for a in answers] == [2, 3, 4]
    assert all(a["licence"] == first["licence"] and a["fields"] == first["fields"] for a in answers)
    assert [a["checks"]["authorisation"]["detail"][:9] for a in answers] == ["2 of 5 us", "3 of 5 us", "4 of 5 us"]


def test_a_known_code_is_judged_on_todays_date(h, calls, monkeypatch):
    """Validity is a condition of the statement, on the day the process judges by."""
    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    assert _verify(h, code).status_code == 200
    monkeypatch.setattr(issuing, "today", lambda: date(2999, 1, 1))
    calls.clear()
    response = _verify(h, code)
    assert response.status_code == 409 and response.get_json()["code"] == "licence_expired"
    assert calls["take_known"] == 1 and _state(h, code)[0] == 1


def test_a_known_codes_answer_reuses_what_the_first_verification_showed(h, calls, monkeypatch):
    """The purpose, licence summary, fields and labels are built once, by the verification that
    read the rows, and kept with the code; later answers show them as they are (equal answers
    but for the count), with the count and the checks of their own take."""
    from licenses import verification

    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    built = []
    summary = verification.licence_summary
    monkeypatch.setattr(verification, "licence_summary", lambda *args: built.append(1) or summary(*args))
    first = _verify(h, code).get_json()
    assert built == [1]
    second, third = _verify(h, code).get_json(), _verify(h, code).get_json()
    assert built == [1] and calls["take_known"] == 2
    assert [a["authorisation"]["uses"] for a in (first, second, third)] == [1, 2, 3]
    assert third["checks"]["authorisation"]["detail"].startswith("3 of 3 uses")
    for answer in (first, second):
        answer["authorisation"]["uses"] = 3
        answer["checks"]["authorisation"]["detail"] = third["checks"]["authorisation"]["detail"]
    assert first == second == third
