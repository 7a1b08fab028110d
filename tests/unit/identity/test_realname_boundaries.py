"""Boundaries and exact answers of the real-name rules (each case here killed
a mutant that survived the rest of the unit tier: see `make mutate`)."""

from datetime import date

import pytest

from services.common.contract.errors import RuleViolation
from services.common.rules.realname import (
    check_name,
    is_minor,
    normalise_id,
    resident_check_char,
)

TODAY = date(2026, 11, 24)


def code_of(id_type, number, today=TODAY):
    with pytest.raises(RuleViolation) as caught:
        normalise_id(id_type, number, today)
    return caught.value.code


def valid_resident(born):
    first17 = f"110105{born:%Y%m%d}123"
    return first17 + resident_check_char(first17)


def test_each_document_type_is_named_in_the_answer():
    hmt = "810000" + "19900101" + "123"
    hmt += resident_check_char(hmt)
    fpr_2023 = "9" + "1010519900101123"[:16]
    fpr_2023 += resident_check_char(fpr_2023)
    for id_type, number, born in (
        ("resident_id", valid_resident(date(1990, 1, 1)), date(1990, 1, 1)),
        ("hmt_residence_permit", hmt, date(1990, 1, 1)),
        ("passport", "E12345678", None),
        ("foreign_permanent_residence", "USA123456789012", None),
        ("foreign_permanent_residence", fpr_2023, fpr_2023_born(fpr_2023)),
        ("other", "AB-1234", None),
    ):
        check = normalise_id(id_type, number, TODAY)
        assert (check.id_type, check.number) == (id_type, number)
        assert getattr(check, "birth_date", None) == born


def fpr_2023_born(number):
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


@pytest.mark.parametrize(
    "id_type,number,code",
    [
        ("resident_id", "1101051990010112", "id_length_invalid"),
        ("resident_id", "11010519900101123Y", "id_format_invalid"),
        ("resident_id", "110105" + "19901301" + "1234", "id_birth_date_invalid"),
        ("resident_id", "110105" + "18791231" + "1234", "id_birth_date_invalid"),
        ("hmt_residence_permit", "81000019900101123", "id_length_invalid"),
        ("passport", "E1", "id_format_invalid"),
        ("foreign_permanent_residence", "US1234", "id_format_invalid"),
        ("other", "a b", "id_format_invalid"),
    ],
)
def test_each_refusal_has_its_own_code(id_type, number, code):
    assert code_of(id_type, number) == code


def test_born_today_is_accepted_born_tomorrow_is_not():
    assert normalise_id("resident_id", valid_resident(TODAY), TODAY).number
    tomorrow = date(2026, 11, 25)
    assert code_of("resident_id", valid_resident(tomorrow)) == "id_birth_date_in_future"


def test_birth_date_is_read_from_its_eight_digits_only():
    number = valid_resident(date(2000, 2, 9))
    check = normalise_id("resident_id", number, TODAY)
    assert check.birth_date == date(2000, 2, 9)


def test_minor_until_the_fourteenth_birthday_exactly():
    born = date(2012, 11, 24)
    assert is_minor(born, date(2026, 11, 23)) is True
    assert is_minor(born, date(2026, 11, 24)) is False
    # Two years short of 14 the day before a birthday is still a minor, one
    # year past is not (the birthday adjustment is one year, not two).
    assert is_minor(date(2011, 11, 25), date(2025, 11, 24)) is True
    assert is_minor(date(2011, 11, 25), date(2026, 11, 24)) is False
    assert is_minor(None, TODAY) is False


def test_names_up_to_forty_characters():
    assert check_name("张" * 40) == "张" * 40
    with pytest.raises(RuleViolation) as caught:
        check_name("张" * 41)
    assert caught.value.code == "name_too_long"
