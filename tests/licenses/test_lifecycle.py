"""Lifecycle: suspend, resume, revoke, amend, expire; every change recorded; only the issuer."""

from __future__ import annotations

from datetime import timedelta

from common.db import begin_write, get_db
from common.values.codes import LicenseIdentifier
from licenses.models import Licence, LicenceEvent
from tests.support.races import paused_after_check


def _status(h, licence_id, action, **body):
    return h.client.post(f"/licences/{licence_id}/status", json={"action": action, **body}, headers=h.issuer)


def test_suspend_resume_revoke_with_history(h, node):
    licence = h.issue_food().get_json()
    assert _status(h, licence["id"], "suspend", reason="整改").get_json()["status"] == "suspended"
    assert _status(h, licence["id"], "resume").get_json()["status"] == "valid"
    revoked = _status(h, licence["id"], "revoke", reason="以欺骗手段取得", kind="withdrawn").get_json()
    assert revoked["status"] == "revoked" and revoked["status_reason"] == "withdrawn: 以欺骗手段取得"
    assert {e["actor"] for e in revoked["history"]} == {"xsn-licenses-demo-issuer"}
    actions = [(e["action"], e["to_status"]) for e in revoked["history"]]
    assert actions == [("issue", "valid"), ("suspend", "suspended"), ("resume", "valid"), ("revoke", "revoked")]
    # revocation is final
    response = _status(h, licence["id"], "resume")
    assert response.status_code == 409 and response.get_json()["code"] == "invalid_status_change"


def test_revocation_needs_a_reason_and_a_kind_and_writes_nothing_otherwise(h):
    licence = h.issue_food().get_json()
    before = h.count(LicenceEvent)
    assert _status(h, licence["id"], "revoke", kind="cancelled").get_json()["code"] == "reason_required"
    assert _status(h, licence["id"], "revoke", reason="x", kind="nope").get_json()["code"] == "invalid_revocation_kind"
    assert h.count(LicenceEvent) == before


def test_another_department_cannot_see_or_change_the_licence(h):
    licence = h.issue_food().get_json()
    response = h.client.post(f"/licences/{licence['id']}/status", json={"action": "suspend", "reason": "x"},
                             headers=h.police)
    assert response.status_code == 404 and response.get_json()["code"] == "licence_not_found"
    assert h.client.get(f"/licences/{licence['id']}", headers=h.police).status_code == 404


def test_amend_issues_the_next_version_and_supersedes_the_old(h, node):
    old = h.issue_food(key="first").get_json()
    response = h.client.post(f"/licences/{old['id']}/amend", headers={**h.issuer, "Idempotency-Key": "amend-1"},
                             json={"fields": {"premises": "西安市雁塔区科技路2号"}, "reason": "经营场所变更"})
    assert response.status_code == 201, response.get_json()
    new = response.get_json()
    old_id, new_id = LicenseIdentifier(old["identifier"]), LicenseIdentifier(new["identifier"])
    assert new_id.serial == old_id.serial and new_id.version == 2 and new["face_number"] == old["face_number"]
    assert new["fields"]["premises"] == "西安市雁塔区科技路2号" and new["supersedes"] == old["identifier"]
    assert h.client.get(f"/licences/{old['id']}", headers=h.issuer).get_json()["status"] == "superseded"
    replay = h.client.post(f"/licences/{old['id']}/amend", headers={**h.issuer, "Idempotency-Key": "amend-1"},
                           json={"fields": {"premises": "西安市雁塔区科技路2号"}, "reason": "经营场所变更"})
    assert replay.status_code == 200 and replay.get_json()["id"] == new["id"]
    assert h.count(Licence) == 2
    # a superseded licence cannot be amended again
    again = h.client.post(f"/licences/{old['id']}/amend", headers=h.issuer, json={"reason": "x"})
    assert again.status_code == 409


def test_amending_a_suspended_licence_keeps_the_new_version_suspended(h, node):
    old = h.issue_food().get_json()
    assert _status(h, old["id"], "suspend", reason="停业整顿").status_code == 200
    response = h.client.post(f"/licences/{old['id']}/amend", headers=h.issuer,
                             json={"fields": {"premises": "西安市雁塔区科技路2号"}, "reason": "经营场所变更"})
    assert response.status_code == 201, response.get_json()
    new = h.client.get(f"/licences/{response.get_json()['id']}", headers=h.issuer).get_json()
    assert (new["status"], new["status_reason"]) == ("suspended", "停业整顿")
    assert h.client.get(f"/licences/{old['id']}", headers=h.issuer).get_json()["status"] == "superseded"
    # only a resumption lifts it
    assert _status(h, new["id"], "resume", reason="整改完成").get_json()["status"] == "valid"


def test_amend_with_bad_fields_changes_nothing(h):
    old = h.issue_food().get_json()
    response = h.client.post(f"/licences/{old['id']}/amend", headers=h.issuer,
                             json={"fields": {"business_type": "超市"}, "reason": "x"})
    assert response.status_code == 422 and response.get_json()["code"] == "invalid_fields"
    assert h.client.get(f"/licences/{old['id']}", headers=h.issuer).get_json()["status"] == "valid"
    assert h.count(Licence) == 1


def test_amend_when_the_seal_node_fails_keeps_the_old_licence_valid(h, node):
    old = h.issue_food().get_json()
    node["deps"].seal.fail_next = 1
    response = h.client.post(f"/licences/{old['id']}/amend", headers={**h.issuer, "Idempotency-Key": "a"},
                             json={"fields": {"premises": "新址"}, "reason": "变更"})
    assert response.status_code == 503
    assert h.client.get(f"/licences/{old['id']}", headers=h.issuer).get_json()["status"] == "valid"
    response = h.client.post(f"/licences/{old['id']}/amend", headers={**h.issuer, "Idempotency-Key": "a"},
                             json={"fields": {"premises": "新址"}, "reason": "变更"})
    assert response.status_code == 201 and response.get_json()["version"] == 2
    assert h.count(Licence) == 2


def test_an_amendment_whose_sealing_failed_does_not_block_the_next(h, node):
    """Without an Idempotency-Key nothing can resume the failed attempt's pending version: it
    is discarded when the sealing fails, so the next amendment takes the next version (it used
    to get 409 until purge_abandoned ran a day later)."""
    old = h.issue_food().get_json()
    node["deps"].seal.fail_next = 1
    body = {"fields": {"premises": "新址"}, "reason": "变更"}
    response = h.client.post(f"/licences/{old['id']}/amend", headers=h.issuer, json=body)
    assert response.status_code == 503 and response.get_json()["code"] == "seal_unavailable"
    assert h.count(Licence) == 1
    response = h.client.post(f"/licences/{old['id']}/amend", headers=h.issuer, json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["version"] == 2 and response.get_json()["fields"]["premises"] == "新址"
    assert h.client.get(f"/licences/{old['id']}", headers=h.issuer).get_json()["status"] == "superseded"
    assert h.count(Licence) == 2


def test_an_amendment_the_seal_node_refused_does_not_block_the_next(h, node, monkeypatch):
    """A refusal (the seal suspended, say) is answered as it was, and leaves nothing behind."""
    from common.peers.seal_client import NoSealForIssuer

    old = h.issue_food().get_json()
    seal = node["deps"].seal
    sign = seal.sign

    def refused_once(*args, **kwargs):
        monkeypatch.setattr(seal, "sign", sign)
        raise NoSealForIssuer("the seal is suspended")

    monkeypatch.setattr(seal, "sign", refused_once)
    body = {"fields": {"premises": "新址"}, "reason": "变更"}
    refused = h.client.post(f"/licences/{old['id']}/amend", headers=h.issuer, json=body)
    assert refused.status_code == 409 and refused.get_json()["code"] == NoSealForIssuer.code
    assert h.client.post(f"/licences/{old['id']}/amend", headers=h.issuer, json=body).status_code == 201
    assert h.count(Licence) == 2


def test_expiry_task_marks_licences_past_their_validity(h, app):
    from common.db import get_db
    from licenses.issuing import today
    from licenses.lifecycle import expire_due

    short = h.issue_food(valid_from=(today() - timedelta(days=10)).isoformat(),
                         valid_until=(today() - timedelta(days=1)).isoformat()).get_json()
    current = h.issue_food().get_json()
    with get_db(app).session() as session:
        assert expire_due(session) == 1
        assert expire_due(session) == 0
    assert h.client.get(f"/licences/{short['id']}", headers=h.issuer).get_json()["status"] == "expired"
    assert h.client.get(f"/licences/{current['id']}", headers=h.issuer).get_json()["status"] == "valid"


def test_licence_list_is_the_departments_own(h):
    h.issue_food()
    h.issue_residence()
    assert [lic["type_code"] for lic in h.client.get("/licences", headers=h.issuer).get_json()] == [h.FOOD]
    assert [lic["type_code"] for lic in h.client.get("/licences", headers=h.police).get_json()] == [h.RESIDENCE]


def test_abandoned_pending_licences_are_purged_but_resumable_ones_kept(h, app, node):
    from common.db import get_db
    from licenses.lifecycle import purge_abandoned

    node["deps"].seal.fail_next = 2
    assert h.issue_food().status_code == 503  # no key: nobody can resume it
    assert h.issue_food(key="resumable").status_code == 503
    with get_db(app).session() as session:
        assert purge_abandoned(session, older_than=timedelta(days=1)) == 0  # too young
        assert purge_abandoned(session, older_than=timedelta(0)) == 1
    assert h.count(Licence) == 1
    assert h.issue_food(key="resumable").status_code == 201


# -- two changes of one licence at once: the status is read under the lock -----------------------
def _race(h, app, monkeypatch, owner, name, first, second):
    """``first`` held where ``owner.name`` is first called, ``second`` run meanwhile; responses."""
    from common.db import get_db

    def post(path, body, headers=h.issuer):
        return lambda: app.test_client().post(path, json=body, headers=headers)

    return paused_after_check(monkeypatch, owner, name, post(*first), post(*second), get_db(app).engine)


def _history(h, licence_id):
    return [(e["action"], e["from_status"], e["to_status"])
            for e in h.client.get(f"/licences/{licence_id}", headers=h.issuer).get_json()["history"]]


def test_a_revocation_and_a_resumption_at_once_one_wins(h, app, monkeypatch):
    from licenses import lifecycle

    licence = h.issue_food().get_json()
    _status(h, licence["id"], "suspend", reason="整改")
    path = f"/licences/{licence['id']}/status"
    revoked, resumed = _race(h, app, monkeypatch, lifecycle, "_record",
                             (path, {"action": "revoke", "reason": "以欺骗手段取得", "kind": "withdrawn"}),
                             (path, {"action": "resume"}))
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    assert resumed.status_code == 409 and resumed.get_json()["code"] == "invalid_status_change"
    assert _history(h, licence["id"]) == [("issue", "pending", "valid"), ("suspend", "valid", "suspended"),
                                          ("revoke", "suspended", "revoked")]


def test_a_resumption_racing_a_revocation_never_leaves_the_licence_valid(h, app, monkeypatch):
    from licenses import lifecycle

    licence = h.issue_food().get_json()
    _status(h, licence["id"], "suspend", reason="整改")
    path = f"/licences/{licence['id']}/status"
    resumed, revoked = _race(h, app, monkeypatch, lifecycle, "_record", (path, {"action": "resume"}),
                             (path, {"action": "revoke", "reason": "以欺骗手段取得", "kind": "withdrawn"}))
    assert resumed.status_code == 200 and revoked.status_code == 200  # one after the other
    assert h.client.get(f"/licences/{licence['id']}", headers=h.issuer).get_json()["status"] == "revoked"
    assert _history(h, licence["id"])[-2:] == [("resume", "suspended", "valid"), ("revoke", "valid", "revoked")]


def test_an_amendment_sealed_while_the_licence_is_revoked_supersedes_nothing(h, app, node, monkeypatch):
    """The seal node is called with no lock held; the revocation committed meanwhile stands."""
    licence = h.issue_food().get_json()
    amended, revoked = _race(h, app, monkeypatch, node["deps"].seal, "sign",
                             (f"/licences/{licence['id']}/amend", {"fields": {"premises": "新址"}, "reason": "变更"}),
                             (f"/licences/{licence['id']}/status",
                              {"action": "revoke", "reason": "以欺骗手段取得", "kind": "withdrawn"}))
    assert revoked.status_code == 200
    assert amended.status_code == 409 and amended.get_json()["code"] == "invalid_status_change"
    assert h.client.get(f"/licences/{licence['id']}", headers=h.issuer).get_json()["status"] == "revoked"
    assert [lic["status"] for lic in h.client.get("/licences", headers=h.issuer).get_json()] == ["revoked"]
    assert _history(h, licence["id"])[-1] == ("revoke", "valid", "revoked")
    # the keyless version (no retry can resume it) is discarded, and no lock is left held
    assert h.count(Licence) == 1
    with get_db(app).session() as session:
        begin_write(session)  # another writer is not kept waiting
        session.rollback()


def test_a_keyed_amendment_sealed_while_the_licence_is_revoked_stays_for_its_retry(h, app, node, monkeypatch):
    licence = h.issue_food().get_json()
    path = f"/licences/{licence['id']}/amend"
    keyed = {**h.issuer, "Idempotency-Key": "amend-1"}
    amended, revoked = _race(h, app, monkeypatch, node["deps"].seal, "sign", (path, AMEND, keyed),
                             (f"/licences/{licence['id']}/status",
                              {"action": "revoke", "reason": "以欺骗手段取得", "kind": "withdrawn"}))
    assert revoked.status_code == 200 and amended.status_code == 409
    assert h.count(Licence) == 2  # kept: its retry learns the same outcome
    retry = h.client.post(path, headers=keyed, json=AMEND)
    assert retry.status_code == 409 and retry.get_json()["code"] == "invalid_status_change"


def test_a_failed_keyless_sealing_is_logged_with_what_an_orphan_signature_names(h, node):
    """A timeout after the seal node signed leaves a signature in its log for a version that is
    discarded here: the discard names the pending id and identifier to match it by."""
    from structlog.testing import capture_logs

    old = h.issue_food().get_json()
    node["deps"].seal.fail_next = 1
    with capture_logs() as captured:
        response = h.client.post(f"/licences/{old['id']}/amend", headers=h.issuer, json=AMEND)
    assert response.status_code == 503
    discarded = [e for e in captured if e["event"] == "pending_licence_discarded"]
    assert len(discarded) == 1 and discarded[0]["licence_id"] == old["id"]
    identifier = LicenseIdentifier(discarded[0]["identifier"])
    assert identifier.serial == LicenseIdentifier(old["identifier"]).serial and identifier.version == 2
    assert discarded[0]["pending_id"] and discarded[0]["pending_id"] != old["id"]


def test_two_amendments_at_once_make_one_new_version(h, app, node, monkeypatch):
    licence = h.issue_food().get_json()
    path = f"/licences/{licence['id']}/amend"
    first, second = _race(h, app, monkeypatch, node["deps"].seal, "sign",
                          (path, {"fields": {"premises": "新址一"}, "reason": "变更"}),
                          (path, {"fields": {"premises": "新址二"}, "reason": "变更"}))
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    assert sorted(lic["status"] for lic in h.client.get("/licences", headers=h.issuer).get_json()) == [
        "superseded", "valid"]


# -- pending versions nobody will finish: a process killed while sealing, a keyed client gone ------
AMEND = {"fields": {"premises": "新址"}, "reason": "变更"}


def _age_pending(app, by: timedelta) -> None:
    """Make every pending licence ``by`` older (the clock moving on)."""
    from sqlalchemy import select

    from common.db import get_db

    with get_db(app).session() as session:
        for row in session.scalars(select(Licence).where(Licence.status == "pending")):
            row.created_at -= by
        session.commit()


def test_a_version_left_by_a_process_killed_while_sealing_is_replaced_once_its_sealing_must_have_ended(
        h, app, node, monkeypatch):
    """A process killed while sealing an amendment leaves its keyless pending version (nothing
    runs to discard it), which refused every further amendment (409) until purge_abandoned a day
    later. Once no sealing can still be under way, the next amendment replaces it."""
    import pytest

    from licenses.lifecycle import sealing_bound

    class Killed(BaseException):  # like SIGKILL: not an Exception, so amend cannot clean up
        pass

    old = h.issue_food().get_json()
    seal = node["deps"].seal
    sign = seal.sign

    def killed(*args, **kwargs):
        monkeypatch.setattr(seal, "sign", sign)
        raise Killed()

    monkeypatch.setattr(seal, "sign", killed)
    path = f"/licences/{old['id']}/amend"
    with pytest.raises(Killed):
        h.client.post(path, headers=h.issuer, json=AMEND)
    assert h.count(Licence) == 2  # the old licence and the pending version left behind
    bound = sealing_bound(node["deps"])
    assert bound == timedelta(minutes=5)  # the floor, for the default settings (see the test below)
    _age_pending(app, bound - timedelta(seconds=5))  # its sealing might still be under way
    busy = h.client.post(path, headers=h.issuer, json=AMEND)
    assert busy.status_code == 409 and busy.get_json()["code"] == "invalid_status_change"
    _age_pending(app, timedelta(seconds=6))
    response = h.client.post(path, headers=h.issuer, json=AMEND)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["version"] == 2
    assert h.client.get(f"/licences/{old['id']}", headers=h.issuer).get_json()["status"] == "superseded"
    assert h.count(Licence) == 2


def test_a_stale_version_is_not_replaced_for_a_licence_revoked_meanwhile(h, app, node, monkeypatch):
    """Revoked between the amendment's first look and the lock under which it replaces a stale
    version: refused there, before a new version is written or a signature spent on it."""
    import pytest

    from licenses import lifecycle

    class Killed(BaseException):
        pass

    old = h.issue_food().get_json()
    seal = node["deps"].seal
    sign = seal.sign

    def killed(*args, **kwargs):
        monkeypatch.setattr(seal, "sign", sign)
        raise Killed()

    monkeypatch.setattr(seal, "sign", killed)
    path = f"/licences/{old['id']}/amend"
    with pytest.raises(Killed):
        h.client.post(path, headers=h.issuer, json=AMEND)
    _age_pending(app, lifecycle.sealing_bound(node["deps"]) + timedelta(seconds=1))
    signed = len(seal.signed)
    amended, revoked = _race(h, app, monkeypatch, lifecycle, "_replace_stale_pending", (path, AMEND),
                             (f"/licences/{old['id']}/status",
                              {"action": "revoke", "reason": "以欺骗手段取得", "kind": "withdrawn"}))
    assert revoked.status_code == 200
    assert amended.status_code == 409 and amended.get_json()["code"] == "invalid_status_change"
    assert len(seal.signed) == signed  # no signature spent on a version that could never be sealed
    assert h.count(Licence) == 2  # the revoked licence and the stale version, left to purge_abandoned


def test_the_sealing_bound_follows_the_seal_clients_timeout_and_retries(make_app):
    """Counted by hand: two seal-node calls, each after up to two token requests and sent up to
    1 + HTTP_RETRIES times, every request two timeouts (connect, then one read), and a wait before
    each retry of at most HTTP_RETRY_AFTER_MAX (above the back-off); at least five minutes."""
    from common.peers.seal_client import MemorySealClient
    from licenses.issuing import Deps
    from licenses.lifecycle import sealing_bound

    app = make_app("licenses", LICENSES_SEAL_CLIENT="http")
    deps = app.extensions["licenses"]["deps"]
    assert (deps.seal.timeout, deps.seal_retries, deps.seal_retry_after_max) == (5.0, 2, 2.0)  # the defaults
    assert sealing_bound(deps) == timedelta(seconds=300)  # 2 * (5 * 2 * 5 s + 2 * 2 s) = 108 s < the floor
    app = make_app("licenses", LICENSES_SEAL_CLIENT="http", HTTP_TIMEOUT=30, HTTP_RETRIES=3,
                   HTTP_RETRY_AFTER_MAX=10)
    deps = app.extensions["licenses"]["deps"]
    assert deps.seal.client.session.get_adapter("http://seal").max_retries.total == 3  # what the bound assumes
    assert sealing_bound(deps) == timedelta(seconds=2 * (6 * 2 * 30 + 3 * 10))  # 780 s
    # a long back-off outgrows a short Retry-After cap: 0, 0.4, 0.8, 1.6, 3.2 s before retries 1..5
    deps = Deps(cipher=deps.cipher, seal=MemorySealClient(timeout=30), seal_retries=5, seal_retry_after_max=1.0)
    assert sealing_bound(deps) == timedelta(seconds=2 * (8 * 2 * 30 + 1 + 1 + 1 + 1.6 + 3.2))


def test_a_slow_sealing_whose_version_was_replaced_supersedes_nothing(h, app, node, monkeypatch):
    """Not killed, only slower than the bound: the amendment that replaced its version stands,
    and the slow one, back under the lock with its signature, finds its version gone (409)."""
    from common.db import get_db
    from licenses.lifecycle import sealing_bound

    licence = h.issue_food().get_json()
    path = f"/licences/{licence['id']}/amend"
    slow_body = {"fields": {"premises": "新址一"}, "reason": "变更"}
    later_body = {"fields": {"premises": "新址二"}, "reason": "变更"}

    def slow():
        return app.test_client().post(path, json=slow_body, headers=h.issuer)

    def later():  # the slow one's sealing has outlasted the bound
        _age_pending(app, sealing_bound(node["deps"]) + timedelta(seconds=1))
        return app.test_client().post(path, json=later_body, headers=h.issuer)

    slowed, replaced = paused_after_check(monkeypatch, node["deps"].seal, "sign", slow, later, get_db(app).engine)
    assert replaced.status_code == 201, replaced.get_json()
    assert slowed.status_code == 409 and slowed.get_json()["code"] == "invalid_status_change"
    assert "replaced" in slowed.get_json()["detail"]
    listed = [h.client.get(f"/licences/{lic['id']}", headers=h.issuer).get_json()
              for lic in h.client.get("/licences", headers=h.issuer).get_json()]
    assert sorted((lic["status"], lic["fields"]["premises"]) for lic in listed) == [
        ("superseded", licence["fields"]["premises"]), ("valid", "新址二")]
    assert h.count(Licence) == 2


def test_a_keyed_version_older_than_the_sealing_bound_is_kept_for_its_retry(h, app, node):
    """Only a keyless version is replaced once its sealing must have ended: a keyed one is its
    client's until the key's retention is over, so a keyless amendment meanwhile gets 409, and
    the retry with the key still completes it."""
    from licenses.lifecycle import IDEMPOTENCY_KEY_RETENTION, sealing_bound

    old = h.issue_food().get_json()
    path = f"/licences/{old['id']}/amend"
    keyed = {**h.issuer, "Idempotency-Key": "amend-1"}
    node["deps"].seal.fail_next = 1
    assert h.client.post(path, headers=keyed, json=AMEND).status_code == 503
    by = sealing_bound(node["deps"]) + timedelta(hours=1)
    assert by < IDEMPOTENCY_KEY_RETENTION
    _age_pending(app, by)
    busy = h.client.post(path, headers=h.issuer, json={**AMEND, "fields": {"premises": "别处"}})
    assert busy.status_code == 409 and busy.get_json()["code"] == "invalid_status_change"
    assert h.count(Licence) == 2
    retry = h.client.post(path, headers=keyed, json=AMEND)
    assert retry.status_code == 201 and retry.get_json()["version"] == 2
    assert retry.get_json()["fields"]["premises"] == "新址"


def test_a_keyed_amendment_never_retried_is_purged_once_its_key_is_no_longer_kept(h, app, node):
    """A keyed pending amendment is kept for its retry, but a client that never retries used to
    block the licence's amendments (409) for good: purge_abandoned never removed keyed rows.
    It goes once the key's retention is over; a keyed first issue (a bulk job's rows are such)
    blocks nothing and is kept."""
    from common.db import get_db
    from licenses.lifecycle import IDEMPOTENCY_KEY_RETENTION, purge_abandoned

    old = h.issue_food().get_json()
    path = f"/licences/{old['id']}/amend"
    node["deps"].seal.fail_next = 2
    failed = h.client.post(path, headers={**h.issuer, "Idempotency-Key": "amend-1"}, json=AMEND)
    assert failed.status_code == 503
    assert h.issue_food(key="first-issue").status_code == 503
    assert h.client.post(path, headers=h.issuer, json=AMEND).status_code == 409
    with get_db(app).session() as session:
        assert purge_abandoned(session, older_than=timedelta(0)) == 0  # both keyed, both kept
    _age_pending(app, IDEMPOTENCY_KEY_RETENTION - timedelta(minutes=1))
    with get_db(app).session() as session:
        assert purge_abandoned(session) == 0  # a retry may still come
    _age_pending(app, timedelta(minutes=2))
    with get_db(app).session() as session:
        assert purge_abandoned(session) == 1
    assert h.count(Licence) == 2  # the old licence and the pending first issue
    response = h.client.post(path, headers=h.issuer, json=AMEND)
    assert response.status_code == 201 and response.get_json()["version"] == 2
    assert h.issue_food(key="first-issue").status_code == 201  # still resumable
