"""Request and response schemas of the identity admin/account REST API."""

from __future__ import annotations

from flask import current_app
from marshmallow import Schema, fields, pre_load, validate

from common.errors import ValidationFailed
from identity.organisations import MEMBER_ROLES, ROLE_SCOPES


def _words(attr: str) -> fields.Function:
    """A space-separated column (``scopes``, ``amr``) as a list of words (read-only)."""
    return fields.Function(lambda obj: getattr(obj, attr).split(), required=True)


class PersonSearchSchema(Schema):
    id_number = fields.String(required=True, validate=validate.Length(min=1, max=32),
                              metadata={"description": "GB 11643 citizen ID number (sent in the body, not the URL)"})


class TooManySubjects(ValidationFailed):
    status, code, title = 413, "too_many_subjects", "Too many subjects in one lookup"


class PeopleLookupSchema(Schema):
    subjects = fields.List(fields.String(validate=validate.Length(min=1, max=64)), required=True,
                           validate=validate.Length(min=1),
                           metadata={"description": "subject ids (OIDC sub); at most PEOPLE_LOOKUP_MAX "
                                                    "(500 by default) distinct ones, else 413 too_many_subjects"})

    @pre_load
    def _at_most_the_limit(self, data, **_kwargs):
        """Counted on the raw JSON list, before any subject is deserialised or validated.

        :raise TooManySubjects: more than ``PEOPLE_LOOKUP_MAX`` distinct subjects.
        """
        raw = data.get("subjects") if isinstance(data, dict) else None
        limit = int(current_app.config["PEOPLE_LOOKUP_MAX"])
        if isinstance(raw, list) and len(raw) > limit:
            try:
                distinct = len(set(raw))
            except TypeError:  # an object or a list among the subjects: malformed, counted as given
                distinct = len(raw)
            if distinct > limit:
                raise TooManySubjects(f"at most {limit} subjects per lookup", max=limit)
        return data


class PersonContactSchema(Schema):
    id = fields.String(required=True, metadata={"description": "opaque subject id (OIDC sub)"})
    name = fields.String(required=True)
    mobile = fields.String(allow_none=True, metadata={"description": "masked unless the caller has phone:full"})
    email = fields.String(allow_none=True, metadata={"description": "masked unless the caller has email:full"})


class PeopleLookupResultSchema(Schema):
    people = fields.List(fields.Nested(PersonContactSchema), required=True,
                         metadata={"description": "the subjects found, in the order asked, each once"})
    unknown = fields.List(fields.String(), required=True,
                          metadata={"description": "the subjects asked for that are no person here"})


class PersonCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    id_number = fields.String(required=True, validate=validate.Length(min=1, max=32))
    mobile = fields.String(load_default=None, validate=validate.Length(max=20))
    email = fields.String(load_default=None, validate=validate.Length(max=254))
    assurance_level = fields.Integer(load_default=1, validate=validate.Range(1, 4))


class PersonSchema(Schema):
    id = fields.String(required=True, metadata={"description": "opaque subject id (OIDC sub)"})
    name = fields.String(required=True)
    id_number = fields.String(required=True, metadata={"description": "masked unless the caller has idcard:full"})
    mobile = fields.String(allow_none=True, metadata={"description": "masked unless the caller has phone:full"})
    email = fields.String(allow_none=True, metadata={"description": "masked unless the caller has email:full"})
    assurance_level = fields.Integer(required=True)
    acr = fields.String(required=True)
    totp_enabled = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class MemberSchema(Schema):
    person_id = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(MEMBER_ROLES))


class OrganisationCreateSchema(Schema):
    credit_code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class OrganisationSchema(Schema):
    id = fields.String(required=True)
    credit_code = fields.String(required=True)
    name = fields.String(required=True)
    members = fields.List(fields.Nested(MemberSchema), required=True)
    created_at = fields.DateTime(required=True)


class GrantCreateSchema(Schema):
    department = fields.String(required=True, validate=validate.Length(min=1, max=128))
    role = fields.String(required=True, validate=validate.OneOf(sorted(ROLE_SCOPES)))
    params = fields.Dict(load_default=dict)
    scopes = fields.List(fields.String(), load_default=None,
                         metadata={"description": "subset of the role's scopes; all of them when omitted"})


class GrantSchema(Schema):
    id = fields.Integer(required=True)
    person_id = fields.String(required=True)
    department = fields.String(required=True)
    role = fields.String(required=True)
    params = fields.Dict(required=True)
    scopes = _words("scopes")
    created_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(allow_none=True)


class LoginSessionSchema(Schema):
    id = fields.String(required=True)
    auth_time = fields.DateTime(required=True)
    last_seen_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    acr = fields.Integer(required=True)
    amr = _words("amr")
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)


class RevokedCountSchema(Schema):
    revoked = fields.Integer(required=True)
