"""The licence catalogue (证照目录): licence types and the field schema of their face.

A type's code follows GB/T 36904 practice: the 18-character credit code of the authority that
owns the catalogue entry followed by a 3-digit sequence. Its face (照面信息) is a list of
typed field specifications; :func:`validate_face` checks a licence's fields against them and
returns them normalised (dates as ISO strings, codes upper-cased), so the canonical document
built from them is the same whichever way a caller spelled a value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Conflict, NotFound, ValidationFailed
from common.values.codes import CitizenId, CreditCode, InvalidCode

from .models import HOLDER_KINDS, LicenceType

FIELD_TYPES = ("string", "text", "date", "integer", "enum", "citizen_id", "credit_code")
SEAL_KINDS = ("license", "official")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_SLUG_RE = re.compile(r"[a-z][a-z0-9_]{1,63}")
_TYPE_CODE_RE = re.compile(r"[0-9A-HJ-NP-RTUW-Y]{18}[0-9]{3}")
MAX_FIELDS = 40
MAX_TEXT = 2000


class UnknownType(NotFound):
    code, title = "unknown_licence_type", "No such licence type"


class TypeExists(Conflict):
    code, title = "licence_type_exists", "The licence type already exists"


class InvalidType(ValidationFailed):
    code, title = "invalid_licence_type", "The licence type definition is invalid"


class InvalidFields(ValidationFailed):
    code, title = "invalid_fields", "The licence fields do not match the type's schema"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    type: str = "string"
    required: bool = True
    personal: bool = False
    max_length: int = 200
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    label_en: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FieldSpec:
        """:raise InvalidType: a malformed specification."""
        try:
            spec = cls(name=raw["name"], label=raw["label"], type=raw.get("type", "string"),
                       required=bool(raw.get("required", True)), personal=bool(raw.get("personal", False)),
                       max_length=int(raw.get("max_length", MAX_TEXT if raw.get("type") == "text" else 200)),
                       pattern=raw.get("pattern"), choices=tuple(raw.get("choices") or ()),
                       label_en=raw.get("label_en"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidType(f"field specification {raw!r} is malformed: {exc}") from None
        if not isinstance(spec.name, str) or not _NAME_RE.fullmatch(spec.name):
            raise InvalidType(f"field name {spec.name!r} must be lower-case [a-z0-9_], at most 40 characters")
        if spec.type not in FIELD_TYPES:
            raise InvalidType(f"field {spec.name}: type must be one of {', '.join(FIELD_TYPES)}")
        if spec.type == "enum" and not spec.choices:
            raise InvalidType(f"field {spec.name}: an enum needs choices")
        if not 1 <= spec.max_length <= MAX_TEXT:
            raise InvalidType(f"field {spec.name}: max_length must be 1..{MAX_TEXT}")
        if spec.pattern is not None:
            try:
                re.compile(spec.pattern)
            except (re.error, TypeError):
                raise InvalidType(f"field {spec.name}: pattern is not a regular expression") from None
        return spec

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "label": self.label, "type": self.type, "required": self.required,
                "personal": self.personal, "max_length": self.max_length}
        if self.pattern:
            data["pattern"] = self.pattern
        if self.choices:
            data["choices"] = list(self.choices)
        if self.label_en:
            data["label_en"] = self.label_en
        return data

    def normalise(self, value: Any) -> str | int:
        """The value in canonical form. :raise ValueError: with a human reason."""
        if self.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("must be an integer")
            return value
        if not isinstance(value, str):
            raise ValueError("must be a string")
        text = value.strip()
        if not text:
            raise ValueError("must not be empty")
        if len(text) > self.max_length:
            raise ValueError(f"at most {self.max_length} characters")
        if self.type == "date":
            try:
                text = date.fromisoformat(text).isoformat()
            except ValueError:
                raise ValueError("must be a date YYYY-MM-DD") from None
        elif self.type == "enum" and text not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        elif self.type in ("citizen_id", "credit_code"):
            kind = CitizenId if self.type == "citizen_id" else CreditCode
            try:
                text = kind.parse(text).value
            except InvalidCode as exc:
                raise ValueError(exc.message) from None
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise ValueError("does not have the required format")
        return text


def field_specs(licence_type: LicenceType) -> list[FieldSpec]:
    """:raise InvalidType: a malformed specification."""
    # Parsed once per definition (bulk issuance checks thousands of rows against one): keyed by
    # the definition's JSON, so a changed definition is parsed again.
    return list(_parsed_specs(json.dumps(licence_type.fields, sort_keys=True, ensure_ascii=False)))


@lru_cache(maxsize=256)
def _parsed_specs(definition: str) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec.from_dict(raw) for raw in json.loads(definition))


def validate_face(licence_type: LicenceType, fields: Any) -> dict[str, str | int]:
    """The face fields checked and normalised. :raise InvalidFields: with ``errors`` per field."""
    if not isinstance(fields, dict):
        raise InvalidFields("fields must be an object", errors={"fields": ["must be an object"]})
    specs = {spec.name: spec for spec in field_specs(licence_type)}
    errors: dict[str, list[str]] = {}
    for name in fields:
        if name not in specs:
            errors[str(name)[:64]] = ["not a field of this licence type"]
    face: dict[str, str | int] = {}
    for name, spec in specs.items():
        value = fields.get(name)
        if value is None or value == "":
            if spec.required:
                errors[name] = ["required"]
            continue
        try:
            face[name] = spec.normalise(value)
        except ValueError as exc:
            errors[name] = [str(exc)]
    if errors:
        raise InvalidFields("; ".join(f"{k}: {v[0]}" for k, v in sorted(errors.items())), errors=errors)
    return face


def personal_fields(licence_type: LicenceType) -> set[str]:
    return {spec.name for spec in field_specs(licence_type) if spec.personal}


# -- the catalogue itself ----------------------------------------------------------------------
def check_definition(data: dict[str, Any]) -> dict[str, Any]:
    """A type definition checked and normalised. :raise InvalidType:"""
    code = str(data.get("code", "")).strip().upper()
    if not _TYPE_CODE_RE.fullmatch(code):
        raise InvalidType("the type code is the owner's 18-character credit code followed by 3 digits")
    try:
        CreditCode(code[:18])
    except InvalidCode as exc:
        raise InvalidType(f"the type code's owner part is not a credit code: {exc.message}") from None
    if not _SLUG_RE.fullmatch(str(data.get("slug", ""))):
        raise InvalidType("slug must be lower-case [a-z0-9_], 2..64 characters")
    if data.get("holder_kind") not in HOLDER_KINDS:
        raise InvalidType(f"holder_kind must be one of {', '.join(HOLDER_KINDS)}")
    if data.get("seal_kind", "license") not in SEAL_KINDS:
        raise InvalidType(f"seal_kind must be one of {', '.join(SEAL_KINDS)}")
    issuers = data.get("issuers") or []
    if not isinstance(issuers, list) or not issuers:
        raise InvalidType("issuers must list at least one credit code")
    try:
        issuers = sorted({CreditCode.parse(code).value for code in issuers})
    except (InvalidCode, AttributeError):
        raise InvalidType("every issuer must be a valid credit code") from None
    raw_fields = data.get("fields") or []
    if not isinstance(raw_fields, list) or not 1 <= len(raw_fields) <= MAX_FIELDS:
        raise InvalidType(f"a type has 1..{MAX_FIELDS} fields")
    if not all(isinstance(raw, dict) for raw in raw_fields):
        raise InvalidType("each field is an object with at least name and label")
    specs = [FieldSpec.from_dict(raw) for raw in raw_fields]
    if len({s.name for s in specs}) != len(specs):
        raise InvalidType("field names must be unique")
    validity = data.get("validity_days")
    if validity is not None and (not isinstance(validity, int) or isinstance(validity, bool)
                                 or not 1 <= validity <= 36500):
        raise InvalidType("validity_days is a number of days (1..36500) or null for no fixed term")
    name = str(data.get("name", "")).strip()
    if not 1 <= len(name) <= 128:
        raise InvalidType("name is 1..128 characters")
    prefix = str(data.get("face_prefix", "")).strip().upper()
    if not re.fullmatch(r"[0-9A-Z]{0,16}", prefix):
        raise InvalidType("face_prefix is up to 16 characters [0-9A-Z]")
    return {"code": code, "slug": data["slug"], "name": name, "name_en": data.get("name_en"),
            "holder_kind": data["holder_kind"], "issuers": issuers, "fields": [s.to_dict() for s in specs],
            "validity_days": validity, "seal_kind": data.get("seal_kind", "license"), "face_prefix": prefix}


def create_type(session: Session, data: dict[str, Any], *, actor: str) -> LicenceType:
    """:raise InvalidType: :raise TypeExists:"""
    clean = check_definition(data)
    if session.get(LicenceType, clean["code"]) is not None or session.scalars(
            select(LicenceType).where(LicenceType.slug == clean["slug"])).first() is not None:
        raise TypeExists(f"licence type {clean['code']} / {clean['slug']} already exists")
    row = LicenceType(**clean, created_by=actor)
    session.add(row)
    session.commit()
    return row


def update_type(session: Session, code: str, data: dict[str, Any], *, actor: str) -> LicenceType:
    """Replace a type's definition (code and slug stay). :raise UnknownType: :raise InvalidType:"""
    row = get_type(session, code)
    clean = check_definition({**data, "code": row.code, "slug": row.slug})
    for key, value in clean.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.commit()
    return row


def set_type_status(session: Session, code: str, status: str) -> LicenceType:
    row = get_type(session, code)
    if status not in ("active", "retired"):
        raise InvalidType("status is active or retired")
    row.status = status
    row.updated_at = utcnow()
    session.commit()
    return row


def get_type(session: Session, code: str) -> LicenceType:
    """By code or slug. :raise UnknownType:"""
    if "\x00" in code:  # names no type, and PostgreSQL refuses to compare text with it (a 500)
        raise UnknownType(f"no licence type {code!r}")
    row = session.get(LicenceType, code) if len(code) == 21 else None
    if row is None:
        row = session.scalars(select(LicenceType).where(LicenceType.slug == code)).first()
    if row is None:
        raise UnknownType(f"no licence type {code!r}")
    return row


def list_types(session: Session, *, include_retired: bool = False) -> list[LicenceType]:
    query = select(LicenceType).order_by(LicenceType.code)
    if not include_retired:
        query = query.where(LicenceType.status == "active")
    return list(session.scalars(query))
