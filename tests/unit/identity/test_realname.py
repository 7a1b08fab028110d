"""Real-name rules: GB 11643 vectors, the other documents, and names."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.contract.errors import RuleViolation
from services.common.rules.masking import mask_id_number
from services.common.rules.realname import (
    check_name,
    is_minor,
    normalise_id,
    resident_check_char,
)

TODAY = date(2026, 11, 24)


def refused(id_type, number):
    with pytest.raises(RuleViolation) as caught:
        normalise_id(id_type, number, TODAY)
    return caught.value.code


@pytest.mark.parametrize(
    "given_,expected",
    [
        ("11010519491231002X", "11010519491231002X"),  # GB 11643 example
        ("11010519491231002x", "11010519491231002X"),  # lower-case x
        (" 110105 19491231 002X ", "11010519491231002X"),  # spaces stripped
        ("440524188001010014", "440524188001010014"),  # the standard's 1880 example
        ("110105491231002", "11010519491231002X"),  # legacy 15 digits -> 18
    ],
)
def test_resident_id_vectors(given_, expected):
    check = normalise_id("resident_id", given_, TODAY)
    assert check.number == expected and check.warnings == ()


def test_birth_date_comes_from_the_number():
    assert normalise_id("resident_id", "11010519491231002X", TODAY).birth_date == date(
        1949, 12, 31
    )


@pytest.mark.parametrize(
    "number,code",
    [
        ("110105194912310021", "id_checksum_invalid"),
        ("11010519490230002X", "id_birth_date_invalid"),  # 30 February
        ("11010520271231002X", "id_birth_date_in_future"),
        ("1101051949123100", "id_length_invalid"),
        ("11010519491231002Y", "id_format_invalid"),
        ("", "id_number_required"),
    ],
)
def test_resident_id_refusals_name_the_rule(number, code):
    assert refused("resident_id", number) == code


def test_unknown_region_is_a_soft_warning_not_a_refusal():
    first17 = "99010519491231002"
    number = first17 + resident_check_char(first17)
    assert normalise_id("resident_id", number, TODAY).warnings == ("id_region_unknown",)


def test_hmt_residence_permits():
    for prefix in ("810000", "820000", "830000"):
        first17 = prefix + "19900101001"
        number = first17 + resident_check_char(first17)
        assert normalise_id("hmt_residence_permit", number, TODAY).number == number
    first17 = "110000" + "19900101001"
    assert refused("hmt_residence_permit", first17 + resident_check_char(first17)) == (
        "id_permit_region_invalid"
    )


def test_passport_foreign_card_and_other():
    assert normalise_id("passport", "e12345678", TODAY).number == "E12345678"
    assert refused("passport", "E1234-5678") == "id_format_invalid"
    assert normalise_id("foreign_permanent_residence", "USA110090001234", TODAY)
    first17 = "93310019850512001"
    new_card = first17 + resident_check_char(first17)
    assert normalise_id(
        "foreign_permanent_residence", new_card, TODAY
    ).birth_date == date(1985, 5, 12)
    assert normalise_id("other", "abc-1234", TODAY).number == "ABC-1234"
    assert refused("driving_licence", "123456") == "id_type_invalid"


@given(
    st.from_regex(
        r"[1-6][0-9]{5}(19[5-9][0-9]|200[0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}",
        fullmatch=True,
    )
)
def test_any_valid_number_normalises_to_itself_and_masks_to_its_ends(first17):
    number = first17 + resident_check_char(first17)
    check = normalise_id("resident_id", number.lower(), TODAY)
    assert check.number == number
    assert normalise_id("resident_id", " ".join(number), TODAY).number == number
    masked = mask_id_number(check.number)
    assert masked[:3] == number[:3] and masked[-4:] == number[-4:]
    assert masked.count("*") == 11


@given(
    st.from_regex(
        r"[1-6][0-9]{5}[5-9][0-9](0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}",
        fullmatch=True,
    )
)
def test_every_15_digit_number_converts_to_a_valid_18(old):
    converted = normalise_id("resident_id", old, TODAY).number
    assert len(converted) == 18 and converted[6:8] == "19"
    assert converted[:6] == old[:6] and converted[8:17] == old[6:]
    assert normalise_id("resident_id", converted, TODAY).number == converted


# Valid bodies: a province-level region (GB/T 2260), a real birth date no
# later than TODAY, a 3-digit sequence. Every example reaches an assertion.
valid_first17 = st.builds(
    lambda region, born, sequence: f"{region}{born:%Y%m%d}{sequence:03d}",
    st.sampled_from(["110105", "320102", "440305", "510104", "650102", "820000"]),
    st.dates(min_value=date(1880, 1, 1), max_value=TODAY),
    st.integers(0, 999),
)


@given(valid_first17, st.sampled_from("0123456789X"))
def test_exactly_one_check_character_is_accepted(first17, check):
    number = first17 + check
    if check == resident_check_char(first17):
        assert normalise_id("resident_id", number, TODAY).number == number
    else:
        assert refused("resident_id", number) == "id_checksum_invalid"


@pytest.mark.parametrize("name", ["张三", "欧阳娜娜", "买买提·艾力", "𠀀明", "王𪚥"])
def test_names_accepted(name):
    assert check_name(name) == name


def test_middle_dot_look_alikes_become_the_middle_dot():
    assert check_name("买买提•艾力") == "买买提·艾力"


@pytest.mark.parametrize(
    "name,code",
    [
        ("张", "name_too_short"),
        ("张 三", "name_has_space"),
        ("·张三", "name_middle_dot_misplaced"),
        ("张三·", "name_middle_dot_misplaced"),
        ("买买提··艾力", "name_middle_dot_misplaced"),
        ("张3", "name_invalid_character"),
    ],
)
def test_names_refused_with_the_rule(name, code):
    with pytest.raises(RuleViolation) as caught:
        check_name(name)
    assert caught.value.code == code


def test_traditional_name_is_refused_with_the_simplified_form():
    with pytest.raises(RuleViolation) as caught:
        check_name("張三豐")
    assert caught.value.code == "name_traditional"
    assert caught.value.extra == {"suggestion": "张三丰"}


def test_minor_means_under_14_on_the_beijing_date():
    assert is_minor(date(2012, 11, 25), TODAY)  # 13, birthday tomorrow
    assert not is_minor(date(2012, 11, 24), TODAY)  # 14 today
    assert not is_minor(None, TODAY)
