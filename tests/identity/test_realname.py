"""Real-name verification: embedded register levels, and the HTTP adapter failing closed."""

from __future__ import annotations

import time

import pytest
from flask import Flask, jsonify, request

from identity import accounts, realname
from identity.seed import DEMO_PEOPLE, DEMO_RESIDENTS


def person_named(db, entry, **kwargs):
    person = accounts.create_person(db, name=entry["name"], id_number=entry["id_number"], **kwargs)
    db.commit()
    return person


def test_register_match_raises_to_l2_and_face_check_to_l3(db):
    register = realname.EmbeddedRegister()
    plain = person_named(db, DEMO_RESIDENTS[0])  # face_verified False
    assert realname.verify_person(db, plain, register) == 2
    face = person_named(db, DEMO_RESIDENTS[1])  # face_verified True
    assert realname.verify_person(db, face, register) == 3
    history = accounts.assurance_history(db, face)
    assert [(e.from_level, e.to_level, e.method) for e in history] == [(1, 3, "realname_face")]
    assert history[0].detail.startswith("embedded:")


def test_name_mismatch_is_refused_and_level_unchanged(db):
    entry = dict(DEMO_RESIDENTS[0], name="冒名")
    person = person_named(db, entry)
    with pytest.raises(realname.RealNameMismatch):
        realname.verify_person(db, person, realname.EmbeddedRegister())
    assert person.assurance_level == 1
    assert accounts.assurance_history(db, person) == []


def test_verification_never_lowers_a_level(db):
    person = person_named(db, DEMO_RESIDENTS[0], assurance_level=4, level_method="counter")
    assert realname.verify_person(db, person, realname.EmbeddedRegister()) == 4


def test_demo_register_holds_every_demo_person():
    register = realname.EmbeddedRegister()
    for entry in DEMO_PEOPLE:
        assert register.verify(entry["name"], entry["id_number"]).matched


@pytest.fixture
def population_register(serve_app):
    """A stand-in population-register service whose behaviour each test sets."""
    behaviour = {"mode": "match", "face": False}
    seen = []
    fake = Flask("fake-register")

    @fake.post("/v1/verifications")
    def verify():
        seen.append((request.headers.get("Authorization"), request.get_json()))
        mode = behaviour["mode"]
        if mode == "slow":
            time.sleep(1.0)
        if mode == "error":
            return jsonify(error="boom"), 500
        if mode == "garbage":
            return "<html>maintenance</html>", 200
        if mode == "wrong_type":
            return jsonify(match="yes"), 200
        return jsonify(match=mode in ("match", "slow"), face_verified=behaviour["face"], reference="PR-1"), 200

    url = serve_app(fake)
    return url, behaviour, seen


def test_http_adapter_match_and_face(db, population_register):
    url, behaviour, seen = population_register
    verifier = realname.HttpPopulationRegister(url, api_key="k-123", timeout=2)
    person = person_named(db, DEMO_RESIDENTS[0])
    assert realname.verify_person(db, person, verifier) == 2
    assert seen[-1] == ("Bearer k-123", {"name": DEMO_RESIDENTS[0]["name"],
                                         "id_number": DEMO_RESIDENTS[0]["id_number"], "face_check": True})
    behaviour["face"] = True
    assert realname.verify_person(db, person, verifier) == 3
    behaviour["mode"] = "nomatch"
    with pytest.raises(realname.RealNameMismatch):
        realname.verify_person(db, person, verifier)


@pytest.mark.parametrize("mode", ["error", "garbage", "wrong_type", "slow"])
def test_http_adapter_fails_closed(db, population_register, mode):
    url, behaviour, _ = population_register
    behaviour["mode"] = mode
    verifier = realname.HttpPopulationRegister(url, api_key=None, timeout=0.3)
    person = person_named(db, DEMO_RESIDENTS[0])
    with pytest.raises(realname.RealNameUnavailable) as caught:
        realname.verify_person(db, person, verifier)
    assert caught.value.status == 503
    db.refresh(person)
    assert person.assurance_level == 1


def test_http_adapter_unreachable_fails_closed(db):
    from tests.support.suite import free_port

    verifier = realname.HttpPopulationRegister(f"http://127.0.0.1:{free_port()}", api_key=None, timeout=0.5)
    person = person_named(db, DEMO_RESIDENTS[0])
    with pytest.raises(realname.RealNameUnavailable):
        realname.verify_person(db, person, verifier)


def test_make_verifier_from_config():
    assert isinstance(realname.make_verifier({"REALNAME_VERIFIER": "embedded"}), realname.EmbeddedRegister)
    http = realname.make_verifier({"REALNAME_VERIFIER": "http", "REALNAME_URL": "https://pr.example/",
                                   "REALNAME_TIMEOUT": "1.5"})
    assert http.url == "https://pr.example/v1/verifications" and http.timeout == 1.5
    with pytest.raises(ValueError):
        realname.make_verifier({"REALNAME_VERIFIER": "http"})
    with pytest.raises(ValueError):
        realname.make_verifier({"REALNAME_VERIFIER": "psychic"})
