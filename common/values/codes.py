"""Identifier value objects: citizen ID, credit code, licence identifier, mobile, payment code.

Every check-digit algorithm the suite relies on lives here (STANDARDS.md §2), so a view, a
service and a test all agree on what "valid" means. Each class is a frozen dataclass whose
``value`` is the canonical string; constructing one directly validates it, ``parse`` also
normalises user input first (surrounding whitespace removed, ASCII letters upper-cased).

All failures raise :class:`InvalidCode`, a ``ValueError`` carrying a stable ``code`` for the
problem+json contract and a human message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import ClassVar, Self

from common.values.times import today as china_today

_DIGITS = frozenset("0123456789")
_ALNUM36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class InvalidCode(ValueError):
    """An identifier failed validation; ``code`` is stable, ``message`` is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _normalise(raw: object, error_code: str) -> str:
    if not isinstance(raw, str):
        raise InvalidCode(error_code, f"expected a string, got {type(raw).__name__}")
    text = raw.strip()
    # Reject non-ASCII before upper-casing: str.upper() maps e.g. "ß" to "SS" and full-width
    # digits would otherwise slip through checks that use str.isdigit().
    if not text.isascii():
        raise InvalidCode(error_code, "only ASCII letters and digits are allowed")
    return text.upper()


class _Code:
    """Shared parse / is_valid / __str__ for the value objects below."""

    error_code: ClassVar[str]
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str):
            raise InvalidCode(self.error_code, f"expected a string, got {type(self.value).__name__}")
        self._validate(self.value)

    @classmethod
    def _validate(cls, value: str) -> None:
        raise NotImplementedError

    @classmethod
    def parse(cls, raw: str) -> Self:
        """Normalise and validate user input. :raise InvalidCode: if it is not a valid code."""
        return cls(_normalise(raw, cls.error_code))

    @classmethod
    def is_valid(cls, raw: str) -> bool:
        try:
            cls.parse(raw)
        except InvalidCode:
            return False
        return True

    def __str__(self) -> str:
        return self.value


# --- GB 11643 citizen identity number ---------------------------------------------------------

_CITIZEN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CITIZEN_CHECK = "10X98765432"
# GB/T 2260 province-level codes, plus 83 used by residence permits of Taiwan residents.
_PROVINCES = frozenset(str(n) for n in (
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
))
# The oldest people registered under GB 11643 were born in the late 19th century.
_EARLIEST_BIRTH = date(1850, 1, 1)


def citizen_id_check(body: str) -> str:
    """Check character for the first 17 digits of a citizen ID. :raise InvalidCode:"""
    if len(body) != 17 or not set(body) <= _DIGITS:
        raise InvalidCode("invalid_citizen_id", "the body must be 17 digits")
    total = sum(int(c) * w for c, w in zip(body, _CITIZEN_WEIGHTS, strict=True))
    return _CITIZEN_CHECK[total % 11]


@dataclass(frozen=True)
class CitizenId(_Code):
    """18-character GB 11643 citizen identity number (a lowercase ``x`` is accepted)."""

    value: str
    error_code: ClassVar[str] = "invalid_citizen_id"

    @classmethod
    def _validate(cls, value: str) -> None:
        def fail(message: str) -> InvalidCode:
            return InvalidCode(cls.error_code, message)

        if len(value) != 18:
            raise fail("a citizen ID has 18 characters")
        if not set(value[:17]) <= _DIGITS or value[17] not in "0123456789X":
            raise fail("a citizen ID is 17 digits followed by a digit or X")
        if value[:2] not in _PROVINCES:
            raise fail("unknown province code in the region digits")
        if value[2:6] == "0000" and value[:2] not in ("81", "82", "83"):
            raise fail("the region code must name a prefecture or county")
        try:
            born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        except ValueError:
            raise fail("the birth date is not a real date") from None
        if not _EARLIEST_BIRTH <= born <= china_today():
            raise fail("the birth date is out of range")
        if citizen_id_check(value[:17]) != value[17]:
            raise fail("the check character does not match")

    @classmethod
    def build(cls, region_code: str, birth_date: date, sequence: int) -> CitizenId:
        """Assemble an ID from its parts (test data, imports). :raise InvalidCode:"""
        if not 0 <= sequence <= 999:
            raise InvalidCode(cls.error_code, "the sequence is three digits")
        body = f"{region_code}{birth_date:%Y%m%d}{sequence:03d}"
        return cls(body + citizen_id_check(body))

    @property
    def region_code(self) -> str:
        return self.value[:6]

    @property
    def birth_date(self) -> date:
        return date(int(self.value[6:10]), int(self.value[10:12]), int(self.value[12:14]))

    def masked(self) -> str:
        """First four and last four characters visible, e.g. ``1101**********002X``."""
        return self.value[:4] + "*" * 10 + self.value[-4:]


# --- GB 32100 unified social credit code ------------------------------------------------------

CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_INDEX = {c: i for i, c in enumerate(CREDIT_ALPHABET)}
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check(body: str) -> str:
    """Check character for the first 17 characters of a credit code. :raise InvalidCode:"""
    if len(body) != 17 or any(c not in _CREDIT_INDEX for c in body):
        raise InvalidCode("invalid_credit_code", f"the body must be 17 characters from {CREDIT_ALPHABET}")
    total = sum(_CREDIT_INDEX[c] * w for c, w in zip(body, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


@dataclass(frozen=True)
class CreditCode(_Code):
    """18-character GB 32100 unified social credit code."""

    value: str
    error_code: ClassVar[str] = "invalid_credit_code"

    @classmethod
    def _validate(cls, value: str) -> None:
        if len(value) != 18:
            raise InvalidCode(cls.error_code, "a unified social credit code has 18 characters")
        if any(c not in _CREDIT_INDEX for c in value):
            raise InvalidCode(cls.error_code, "a credit code uses digits and letters other than I O Z S V")
        if credit_code_check(value[:17]) != value[17]:
            raise InvalidCode(cls.error_code, "the check character does not match")

    @classmethod
    def build(cls, body: str) -> CreditCode:
        """Append the check character to a 17-character body. :raise InvalidCode:"""
        return cls(body + credit_code_check(body))


# --- ISO/IEC 7064 hybrid check characters ------------------------------------------------------


def _mod37_36_state(s: str, p: int = 36) -> int:
    """The MOD 37,36 running value after ``s``, from ``p`` (36 at the start). :raise InvalidCode:"""
    for c in s:
        i = _ALNUM36.find(c)
        if i < 0:
            raise InvalidCode("invalid_license_identifier", f"{c!r} is not in [0-9A-Z]")
        p = (2 * ((p + i) % 36 or 36)) % 37
    return p


def mod37_36_check(s: str) -> str:
    """ISO/IEC 7064 MOD 37,36 hybrid check character over ``[0-9A-Z]``. :raise InvalidCode:"""
    return _ALNUM36[(37 - _mod37_36_state(s)) % 36]


def mod11_10_check(s: str) -> str:
    """ISO/IEC 7064 MOD 11,10 hybrid check digit over decimal digits. :raise InvalidCode:"""
    p = 10
    for c in s:
        if c not in _DIGITS:
            raise InvalidCode("invalid_payment_code", f"{c!r} is not a digit")
        p = (2 * ((p + int(c)) % 10 or 10)) % 11
    return str((11 - p) % 10)


# --- GB/T 36904 electronic licence identifier -------------------------------------------------

LICENSE_ROOT = "1.2.156.3005.2"
_ALNUM_RE = re.compile(r"[0-9A-Z]+")


@dataclass(frozen=True)
class LicenseIdentifier(_Code):
    """``1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check>`` (GB/T 36904).

    The issuer code must have the shape of a credit code but its own check character is
    not enforced: the licence check character already catches transcription errors, and
    rejecting a licence because its issuer's registration data is wrong would help nobody.
    """

    value: str
    error_code: ClassVar[str] = "invalid_license_identifier"

    @classmethod
    def _validate(cls, value: str) -> None:
        def fail(message: str) -> InvalidCode:
            return InvalidCode(cls.error_code, message)

        if not value.startswith(LICENSE_ROOT + "."):
            raise fail(f"a licence identifier starts with {LICENSE_ROOT}")
        parts = value[len(LICENSE_ROOT) + 1 :].split(".")
        if len(parts) != 5:
            raise fail("expected type, issuer, serial, version and check after the root")
        type_code, issuer, serial, version, check = parts
        problem = _licence_head_problem(type_code, issuer) or _serial_problem(serial)
        if problem:
            raise fail(problem)
        if len(version) != 3 or not set(version) <= _DIGITS or version == "000":
            raise fail("the version is three digits from 001")
        if len(check) != 1 or mod37_36_check(type_code + issuer + serial + version) != check:
            raise fail("the check character does not match")

    @classmethod
    def build(cls, type_code: str, issuer_code: str | CreditCode, serial: str,
              version: int = 1) -> LicenseIdentifier:
        """Assemble and check-sum an identifier. :raise InvalidCode: on malformed parts."""
        return LicenseIdentifiers(type_code, issuer_code).build(serial, version)

    def _part(self, i: int) -> str:
        return self.value[len(LICENSE_ROOT) + 1 :].split(".")[i]

    @property
    def type_code(self) -> str:
        return self._part(0)

    @property
    def issuer_code(self) -> str:
        return self._part(1)

    @property
    def serial(self) -> str:
        return self._part(2)

    @property
    def version(self) -> int:
        return int(self._part(3))

    def next_version(self) -> LicenseIdentifier:
        """The identifier of the re-issued licence. :raise InvalidCode: after version 999."""
        return self.build(self.type_code, self.issuer_code, self.serial, self.version + 1)


def _licence_head_problem(type_code: object, issuer: str) -> str | None:
    """What is wrong with an identifier's type and issuer codes (the rules parsing and building
    share), or None."""
    if not isinstance(type_code, str) or not _ALNUM_RE.fullmatch(type_code):
        return "the type code must be non-empty [0-9A-Z]"
    if len(issuer) != 18 or any(c not in _CREDIT_INDEX for c in issuer):
        return "the issuer code must be an 18-character credit code"
    return None


def _serial_problem(serial: object) -> str | None:
    if not isinstance(serial, str) or not _ALNUM_RE.fullmatch(serial):
        return "the serial must be non-empty [0-9A-Z]"
    return None


class LicenseIdentifiers:
    """Identifiers of one licence type and issuer: both checked once, here, and the check
    sum's running value after them kept, so each :meth:`build` checks and sums only the serial
    and version (bulk issuance builds thousands for one type and issuer).

    :raise InvalidCode: the type code is not non-empty ``[0-9A-Z]`` or the issuer code is not
        shaped as a credit code (what :class:`LicenseIdentifier` requires of them).
    """

    __slots__ = ("_head", "_state")

    def __init__(self, type_code: str, issuer_code: str | CreditCode) -> None:
        issuer = str(issuer_code)
        if problem := _licence_head_problem(type_code, issuer):
            raise InvalidCode(LicenseIdentifier.error_code, problem)
        self._head = f"{LICENSE_ROOT}.{type_code}.{issuer}."
        self._state = _mod37_36_state(type_code + issuer)

    def build(self, serial: str, version: int = 1) -> LicenseIdentifier:
        """The identifier of ``serial`` at ``version``. :raise InvalidCode: on a malformed part."""
        if not isinstance(version, int) or not 1 <= version <= 999:
            raise InvalidCode(LicenseIdentifier.error_code, "the version is between 1 and 999")
        if problem := _serial_problem(serial):
            raise InvalidCode(LicenseIdentifier.error_code, problem)
        tail = f"{serial}{version:03d}"
        check = _ALNUM36[(37 - _mod37_36_state(tail, self._state)) % 36]
        # Every part was checked above (type and issuer in __init__) and the check character is
        # computed, not given: the value is valid by construction, so it is not parsed again.
        identifier = object.__new__(LicenseIdentifier)
        object.__setattr__(identifier, "value", f"{self._head}{serial}.{version:03d}.{check}")
        return identifier


# --- Mainland mobile number --------------------------------------------------------------------

_MOBILE_RE = re.compile(r"1[3-9][0-9]{9}")


@dataclass(frozen=True)
class MobileNumber(_Code):
    """Mainland China 11-digit mobile number; ``parse`` also accepts a ``+86`` prefix."""

    value: str
    error_code: ClassVar[str] = "invalid_mobile_number"

    @classmethod
    def _validate(cls, value: str) -> None:
        if not _MOBILE_RE.fullmatch(value):
            raise InvalidCode(cls.error_code, "a mobile number is 11 digits starting with 13-19")

    @classmethod
    def parse(cls, raw: str) -> MobileNumber:
        text = _normalise(raw, cls.error_code)
        return cls(text.removeprefix("+86"))

    def masked(self) -> str:
        return f"{self.value[:3]}****{self.value[-4:]}"


# --- Our non-tax payment code ------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentCode(_Code):
    """20-digit non-tax payment code (缴款码) issued by this suite.

    No public layout exists for the provincial 20-digit codes (STANDARDS.md §2), so this is
    our own; codes issued elsewhere are handled as opaque strings, not as this type::

        610100 25 01 000012345 7
        |      |  |  |         `- check digit: ISO/IEC 7064 MOD 11,10 over the first 19 digits
        |      |  |  `----------- serial, 9 digits, unique per region, year and channel
        |      |  `-------------- channel / payment type, 2 digits (00-99)
        |      `----------------- year of issue, last two digits (2000-2099)
        `------------------------ GB/T 2260 region code of the collecting authority
    """

    value: str
    error_code: ClassVar[str] = "invalid_payment_code"

    @classmethod
    def _validate(cls, value: str) -> None:
        if len(value) != 20 or not set(value) <= _DIGITS:
            raise InvalidCode(cls.error_code, "a payment code is 20 digits")
        if value[:2] not in _PROVINCES:
            raise InvalidCode(cls.error_code, "unknown province code in the region digits")
        if mod11_10_check(value[:19]) != value[19]:
            raise InvalidCode(cls.error_code, "the check digit does not match")

    @classmethod
    def build(cls, serial: int, *, year: int, channel: int, region_code: str = "610100") -> PaymentCode:
        """Assemble a code. :raise InvalidCode: if a part is out of range."""
        if not 2000 <= year <= 2099:
            raise InvalidCode(cls.error_code, "the year must be within 2000-2099")
        if not 0 <= channel <= 99 or not 0 <= serial <= 999_999_999:
            raise InvalidCode(cls.error_code, "channel is 2 digits and serial 9 digits")
        if len(region_code) != 6 or not set(region_code) <= _DIGITS:
            raise InvalidCode(cls.error_code, "the region code is 6 digits")
        body = f"{region_code}{year % 100:02d}{channel:02d}{serial:09d}"
        return cls(body + mod11_10_check(body))

    @property
    def region_code(self) -> str:
        return self.value[:6]

    @property
    def year(self) -> int:
        return 2000 + int(self.value[6:8])

    @property
    def channel(self) -> int:
        return int(self.value[8:10])

    @property
    def serial(self) -> int:
        return int(self.value[10:19])
