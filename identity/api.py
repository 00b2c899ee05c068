"""Admin and account REST API (bearer tokens; errors as problem+json).

Scopes: ``identity:people:read`` (look people and organisations up, many people at once with
``POST /people/lookup``), ``identity:admin``
(create people and organisations, link members, grant staff roles), ``account`` (a person
managing their own login sessions). Personal data is masked unless the token also carries
``idcard:full`` / ``phone:full`` / ``email:full``.
"""

from __future__ import annotations

from collections.abc import Collection

from flask.views import MethodView
from flask_smorest import Blueprint

from common.db import get_session
from common.errors import Forbidden, NotFound
from common.web.auth import BEARER, current_claims, require_token, scopes_of
from identity import accounts, organisations
from identity import claims as claim_rules
from identity.models import Person
from identity.oauth.login_sessions import list_login_sessions, revoke_all_login_sessions, revoke_login_session
from identity.schemas import (
    GrantCreateSchema,
    GrantSchema,
    LoginSessionSchema,
    MemberSchema,
    OrganisationCreateSchema,
    OrganisationSchema,
    PeopleLookupResultSchema,
    PeopleLookupSchema,
    PersonCreateSchema,
    PersonSchema,
    PersonSearchSchema,
    RevokedCountSchema,
)

blp = Blueprint("identity_api", __name__, url_prefix="/api/v1", description="People, organisations, staff, sessions")

READ, ADMIN, ACCOUNT = "identity:people:read", "identity:admin", "account"
ERRORS = (400, 401, 403, 404, 409, 413, 422)


class PersonNotFound(NotFound):
    code, title = "person_not_found", "No such person"


class NotAPerson(Forbidden):
    code, title = "not_a_person", "The token's subject is not a person of this node"


def _person_view(person: Person) -> dict:
    db = get_session()
    scopes = scopes_of(current_claims())
    return {**_contact_view(person, scopes),
            "id_number": claim_rules.disclosed("id_number", accounts.decrypt_id_number(db, person), scopes),
            "assurance_level": person.assurance_level, "acr": claim_rules.acr_for(person.assurance_level),
            "totp_enabled": person.totp_enabled, "created_at": person.created_at}


def _contact_view(person: Person, scopes: Collection[str]) -> dict:
    """What a sender needs to reach a person; no ID number (the batch lookup is for messaging,
    and leaving it out also saves one SM4 decryption a person)."""
    db = get_session()
    return {"id": person.id, "name": person.name,
            "mobile": claim_rules.disclosed("mobile", accounts.decrypt_mobile(db, person), scopes),
            "email": claim_rules.disclosed("email", accounts.decrypt_email(db, person), scopes)}


def _person(person_id: str) -> Person:
    person = accounts.get_person(get_session(), person_id)
    if person is None:
        raise PersonNotFound()
    return person


def _organisation(credit_code: str):
    org = organisations.find_organisation(get_session(), credit_code)
    if org is None:
        raise organisations.OrganisationNotFound()
    return org


def _me() -> Person:
    person = accounts.get_person(get_session(), current_claims().get("sub", ""))
    if person is None:
        raise NotAPerson()
    return person


def _doc(view):
    view = blp.doc(security=BEARER)(view)
    for status in ERRORS:
        view = blp.alt_response(status, description="problem+json")(view)
    return view


@blp.route("/people")
class People(MethodView):
    @require_token(ADMIN)
    @blp.arguments(PersonCreateSchema)
    @blp.response(201, PersonSchema)
    @_doc
    def post(self, data):
        """Register a person on behalf of a counter (no password: they set one by reset)."""
        db = get_session()
        person = accounts.create_person(db, name=data["name"], id_number=data["id_number"], mobile=data["mobile"],
                                        assurance_level=data["assurance_level"], level_method="admin",
                                        email=data["email"])
        db.commit()
        return _person_view(person)


@blp.route("/people/search")
class PeopleSearch(MethodView):
    @require_token(READ)
    @blp.arguments(PersonSearchSchema)
    @blp.response(200, PersonSchema)
    @_doc
    def post(self, data):
        """Find a person by ID number (exact match through the blind index)."""
        accounts.parse_id_number(data["id_number"])  # a malformed number is a 422, not a 404
        person = accounts.find_person_by_id_number(get_session(), data["id_number"])
        if person is None:
            raise PersonNotFound()
        return _person_view(person)


@blp.route("/people/lookup")
class PeopleLookup(MethodView):
    @require_token(READ)
    @blp.arguments(PeopleLookupSchema)
    @blp.response(200, PeopleLookupResultSchema)
    @_doc
    def post(self, data):
        """Many people's contacts at once, by subject id (unknown subjects are listed, not an error)."""
        subjects = list(dict.fromkeys(data["subjects"]))  # at most PEOPLE_LOOKUP_MAX: the schema counted them
        found = {p.id: p for p in accounts.get_people(get_session(), subjects)}
        scopes = set(scopes_of(current_claims()))
        return {"people": [_contact_view(found[s], scopes) for s in subjects if s in found],
                "unknown": [s for s in subjects if s not in found]}


@blp.route("/people/<person_id>")
class PersonResource(MethodView):
    @require_token(READ)
    @blp.response(200, PersonSchema)
    @_doc
    def get(self, person_id):
        """One person, by subject id."""
        return _person_view(_person(person_id))


@blp.route("/people/<person_id>/grants")
class Grants(MethodView):
    @require_token(READ)
    @blp.response(200, GrantSchema(many=True))
    @_doc
    def get(self, person_id):
        """The person's active staff grants."""
        return organisations.active_grants(get_session(), _person(person_id))

    @require_token(ADMIN)
    @blp.arguments(GrantCreateSchema)
    @blp.response(201, GrantSchema)
    @_doc
    def post(self, data, person_id):
        """Grant a staff role in a department."""
        db = get_session()
        grant = organisations.grant_staff_role(db, _person(person_id), **data)
        db.commit()
        return grant


@blp.route("/grants/<int:grant_id>")
class GrantResource(MethodView):
    @require_token(ADMIN)
    @blp.response(200, GrantSchema)
    @_doc
    def delete(self, grant_id):
        """Revoke a staff grant (kept, marked revoked)."""
        db = get_session()
        grant = organisations.revoke_grant(db, grant_id)
        db.commit()
        return grant


@blp.route("/organisations")
class Organisations(MethodView):
    @require_token(ADMIN)
    @blp.arguments(OrganisationCreateSchema)
    @blp.response(201, OrganisationSchema)
    @_doc
    def post(self, data):
        """Register a legal person (法人) by unified social credit code."""
        db = get_session()
        org = organisations.create_organisation(db, **data)
        db.commit()
        return org


@blp.route("/organisations/<credit_code>")
class OrganisationResource(MethodView):
    @require_token(READ)
    @blp.response(200, OrganisationSchema)
    @_doc
    def get(self, credit_code):
        """One organisation with its legal representative and agents."""
        return _organisation(credit_code)


@blp.route("/organisations/<credit_code>/members")
class Members(MethodView):
    @require_token(ADMIN)
    @blp.arguments(MemberSchema)
    @blp.response(201, OrganisationSchema)
    @_doc
    def post(self, data, credit_code):
        """Link a person as legal representative (replaces the previous one) or agent."""
        db = get_session()
        org = _organisation(credit_code)
        organisations.link_member(db, org, _person(data["person_id"]), data["role"])
        db.commit()
        return org


@blp.route("/me/sessions")
class MySessions(MethodView):
    @require_token(ACCOUNT)
    @blp.response(200, LoginSessionSchema(many=True))
    @_doc
    def get(self):
        """The caller's active browser login sessions."""
        return list_login_sessions(get_session(), _me())

    @require_token(ACCOUNT)
    @blp.response(200, RevokedCountSchema)
    @_doc
    def delete(self):
        """Sign out everywhere: revoke every login session of the caller."""
        db = get_session()
        count = revoke_all_login_sessions(db, _me())
        db.commit()
        return {"revoked": count}


@blp.route("/me/sessions/<session_id>")
class MySession(MethodView):
    @require_token(ACCOUNT)
    @blp.response(204)
    @_doc
    def delete(self, session_id):
        """Revoke one of the caller's login sessions."""
        db = get_session()
        revoke_login_session(db, _me(), session_id)
        db.commit()
