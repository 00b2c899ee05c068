import dataclasses
import string
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.values.codes import (
    CREDIT_ALPHABET,
    CitizenId,
    CreditCode,
    InvalidCode,
    LicenseIdentifier,
    LicenseIdentifiers,
    MobileNumber,
    PaymentCode,
    citizen_id_check,
    mod11_10_check,
    mod37_36_check,
)

# Sample identifiers from STANDARDS.md §2; the two licence identifiers are real ones.
SAMPLES = [
    (CitizenId, "11010519491231002X"),
    (CitizenId, "440524188001010014"),
    (CreditCode, "91110000600037341L"),
    (LicenseIdentifier, "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U"),
    (LicenseIdentifier, "1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0"),
    (PaymentCode, str(PaymentCode.build(12345, year=2025, channel=1))),
]
# Substitutes for the single-character mutation test: the full alphabets plus separators
# and characters that look like digits.
SUBSTITUTES = string.digits + string.ascii_letters + ".-* /+\u00d7\uff11"


@pytest.mark.parametrize(("cls", "value"), SAMPLES)
def test_samples_are_valid(cls, value):
    code = cls.parse(value)
    assert str(code) == value
    assert cls.is_valid(value)


@pytest.mark.parametrize(("cls", "value"), SAMPLES)
def test_every_single_character_change_is_rejected(cls, value):
    checked = 0
    for i, original in enumerate(value):
        for c in SUBSTITUTES:
            mutated = value[:i] + c + value[i + 1 :]
            # Lowercase input is normalised to upper case, so "x" for "X" is the same code.
            if c == original or c.upper() == original:
                continue
            assert not cls.is_valid(mutated), mutated
            checked += 1
    assert checked > 50 * len(value)


def test_lowercase_x_is_normalised():
    assert CitizenId.parse("11010519491231002x").value == "11010519491231002X"
    assert CitizenId.parse(" 11010519491231002X\n").value == "11010519491231002X"


def test_citizen_id_parts_and_masking():
    cid = CitizenId.parse("11010519491231002X")
    assert cid.region_code == "110105"
    assert cid.birth_date == date(1949, 12, 31)
    assert cid.masked() == "1101**********002X"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("11010520990101001", "out of range"),  # born in the future
        ("11010519490230001", "not a real date"),  # 30 February
        ("11010517000101001", "out of range"),  # before any GB 11643 registration
        ("00010519491231002", "province"),
        ("99010519491231002", "province"),
        ("11000019491231002", "region"),
    ],
)
def test_citizen_id_rejects_impossible_parts_even_with_a_correct_check(body, reason):
    with pytest.raises(InvalidCode, match=reason) as exc:
        CitizenId.parse(body + citizen_id_check(body))
    assert exc.value.code == "invalid_citizen_id"


@pytest.mark.parametrize(
    ("cls", "value", "code"),
    [
        (CitizenId, "", "invalid_citizen_id"),
        (CitizenId, "11010519491231002", "invalid_citizen_id"),
        (CitizenId, "11010519491231002XX", "invalid_citizen_id"),
        (CitizenId, "1101051949123100X2", "invalid_citizen_id"),
        (CitizenId, "\uff11" + "1010519491231002X", "invalid_citizen_id"),  # full-width 1
        (CreditCode, "91110000600037341", "invalid_credit_code"),
        (CreditCode, "91110000600037341LL", "invalid_credit_code"),
        (CreditCode, "9111000060003734IL", "invalid_credit_code"),  # I is not in the alphabet
        (CreditCode, "91110000600037341O", "invalid_credit_code"),
        (LicenseIdentifier, "1.2.156.3005.2.A.11430000006122244L.1.001", "invalid_license_identifier"),
        (LicenseIdentifier, "1.2.156.3005.2.A.11430000006122244L..001.X", "invalid_license_identifier"),
        (LicenseIdentifier, "1.2.156.3005.1.A.11430000006122244L.1.001.X", "invalid_license_identifier"),
        (LicenseIdentifier, "1.2.156.3005.2.A.1143000000612224.1.001.X", "invalid_license_identifier"),
        (LicenseIdentifier, "1.2.156.3005.2.A.11430000006122244L.1.01.X", "invalid_license_identifier"),
        (LicenseIdentifier, "1.2.156.3005.2.A_B.11430000006122244L.1.001.X", "invalid_license_identifier"),
        (MobileNumber, "1381234123", "invalid_mobile_number"),
        (MobileNumber, "138123412345", "invalid_mobile_number"),
        (MobileNumber, "12812341234", "invalid_mobile_number"),
        (MobileNumber, "2381234123a", "invalid_mobile_number"),
        (PaymentCode, "6101002501000012345", "invalid_payment_code"),
        (PaymentCode, "610100250100001234500", "invalid_payment_code"),
        (PaymentCode, "6101002501000012345A", "invalid_payment_code"),
    ],
)
def test_bad_lengths_and_alphabets_are_rejected(cls, value, code):
    with pytest.raises(InvalidCode) as exc:
        cls.parse(value)
    assert exc.value.code == code
    assert str(exc.value)  # a human message
    assert not cls.is_valid(value)


@pytest.mark.parametrize(("cls", "value"), [*SAMPLES, (MobileNumber, "13812341234")])
def test_direct_construction_validates_and_values_are_frozen(cls, value):
    with pytest.raises(InvalidCode):
        cls("not a code")
    with pytest.raises(InvalidCode):
        cls(None)
    assert not cls.is_valid(None)
    code = cls(value)
    with pytest.raises(dataclasses.FrozenInstanceError):
        code.value = value
    assert cls.parse(str(code)) == code


def test_mobile_number():
    m = MobileNumber.parse("+86 13812341234".replace(" ", ""))
    assert m.value == "13812341234"
    assert m.masked() == "138****1234"
    assert MobileNumber.is_valid("19912345678")


def test_mod37_36_matches_the_licence_samples():
    assert mod37_36_check("11100000000013338W01111430000006122244L20230000403001") == "U"
    assert mod37_36_check("11100000000013338W00911330105002500287C2025052201002") == "0"
    with pytest.raises(InvalidCode):
        mod37_36_check("abc")


def test_mod11_10_known_answer():
    # ISO/IEC 7064 worked example: 0794 -> check digit 5.
    assert mod11_10_check("0794") == "5"
    with pytest.raises(InvalidCode):
        mod11_10_check("07a4")


def test_license_identifier_parts_and_reissue():
    lid = LicenseIdentifier.parse(SAMPLES[3][1])
    assert lid.type_code == "11100000000013338W011"
    assert lid.issuer_code == "11430000006122244L"
    assert lid.serial == "20230000403"
    assert lid.version == 1
    reissued = lid.next_version()
    assert reissued.version == 2 and reissued.serial == lid.serial
    assert str(reissued).startswith("1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.002.")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"version": 0},
        {"version": 1000},
        {"serial": ""},
        {"serial": "a-1"},
    ],
)
def test_license_identifier_build_rejects_bad_parts(kwargs):
    args = {"type_code": "11100000000013338W011", "issuer_code": "11430000006122244L", "serial": "1"}
    args.update(kwargs)
    with pytest.raises(InvalidCode):
        LicenseIdentifier.build(**args)


@pytest.mark.parametrize(
    ("type_code", "issuer_code"),
    [
        ("", "11430000006122244L"),
        ("a1", "11430000006122244L"),
        ("11100000000013338W011", "1143000000612224"),  # 16 characters
        ("11100000000013338W011", "11430000006122244I"),  # I is not in the credit alphabet
        (None, "11430000006122244L"),
    ],
)
def test_license_identifiers_check_type_and_issuer_once(type_code, issuer_code):
    with pytest.raises(InvalidCode) as raised:
        LicenseIdentifiers(type_code, issuer_code)
    assert raised.value.code == "invalid_license_identifier"


@pytest.mark.parametrize(("serial", "version"), [("", 1), ("a1", 1), ("1.2", 1), (None, 1), ("1", 0), ("1", 1000)])
def test_license_identifiers_check_serial_and_version_each_time(serial, version):
    identifiers = LicenseIdentifiers("11100000000013338W011", "11430000006122244L")
    with pytest.raises(InvalidCode):
        identifiers.build(serial, version)


def test_license_identifiers_match_the_samples():
    identifiers = LicenseIdentifiers("11100000000013338W011", "11430000006122244L")
    assert identifiers.build("20230000403", 1) == LicenseIdentifier.parse(SAMPLES[3][1])
    assert str(identifiers.build("20230000403", 1)) == SAMPLES[3][1]


def test_payment_code_layout():
    code = PaymentCode.build(12345, year=2025, channel=7)
    assert code.value[:19] == "6101002507000012345"
    assert (code.region_code, code.year, code.channel, code.serial) == ("610100", 2025, 7, 12345)
    for bad in ({"year": 1999}, {"channel": 100}, {"region_code": "61010"}):
        with pytest.raises(InvalidCode):
            PaymentCode.build(1, **{"year": 2025, "channel": 1, **bad})
    with pytest.raises(InvalidCode):
        PaymentCode.build(10**9, year=2025, channel=1)


# --- round trips -------------------------------------------------------------------------------

_provinces = st.sampled_from(["11", "31", "44", "61", "65", "81"])
_alnum = st.text(alphabet=string.digits + string.ascii_uppercase, min_size=1, max_size=24)


@given(
    province=_provinces,
    rest=st.integers(1, 9999),
    born=st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)),
    seq=st.integers(0, 999),
)
def test_citizen_id_round_trip(province, rest, born, seq):
    cid = CitizenId.build(f"{province}{rest:04d}", born, seq)
    assert CitizenId.parse(cid.value.lower()) == cid
    assert cid.birth_date == born
    assert cid.masked()[:4] == cid.value[:4] and cid.masked()[-4:] == cid.value[-4:]


@given(body=st.text(alphabet=CREDIT_ALPHABET, min_size=17, max_size=17))
def test_credit_code_round_trip(body):
    code = CreditCode.build(body)
    assert CreditCode.parse(code.value.lower()) == code


@given(
    type_body=st.text(alphabet=CREDIT_ALPHABET, min_size=17, max_size=17),
    issuer_body=st.text(alphabet=CREDIT_ALPHABET, min_size=17, max_size=17),
    seq=st.integers(0, 999),
    serial=_alnum,
    version=st.integers(1, 999),
)
def test_license_identifier_round_trip(type_body, issuer_body, seq, serial, version):
    type_code = str(CreditCode.build(type_body)) + f"{seq:03d}"
    issuer = CreditCode.build(issuer_body)
    lid = LicenseIdentifier.build(type_code, issuer, serial, version)
    parsed = LicenseIdentifier.parse(str(lid))
    assert parsed == lid
    # Built from the checked type and issuer: the same identifier, and one that validates.
    many = LicenseIdentifiers(type_code, issuer)
    assert many.build(serial, version) == lid == LicenseIdentifier(many.build(serial, version).value)
    assert (parsed.type_code, parsed.issuer_code, parsed.serial, parsed.version) == (
        type_code, issuer.value, serial, version)


@given(
    serial=st.integers(0, 999_999_999),
    year=st.integers(2000, 2099),
    channel=st.integers(0, 99),
)
def test_payment_code_round_trip(serial, year, channel):
    code = PaymentCode.build(serial, year=year, channel=channel)
    parsed = PaymentCode.parse(str(code))
    assert (parsed.serial, parsed.year, parsed.channel) == (serial, year, channel)


@given(st.text(alphabet=string.digits + string.ascii_uppercase, min_size=1, max_size=30))
def test_mod37_36_detects_every_single_substitution(s):
    check = mod37_36_check(s)
    for i in range(len(s)):
        for c in string.digits + string.ascii_uppercase:
            if c != s[i]:
                assert mod37_36_check(s[:i] + c + s[i + 1 :]) != check
