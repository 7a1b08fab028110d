"""Boundaries of masking and contact normalisation (each case here killed a
mutant that survived the rest of the unit tier: see `make mutate`)."""

import pytest

from services.common.contract.errors import InvalidRequest
from services.common.rules.contacts import normalise_email, normalise_mobile
from services.common.rules.masking import mask_device, mask_email, mask_id_number


@pytest.mark.parametrize(
    "value,masked",
    [
        ("1234567", "*******"),  # 7 or fewer: nothing shown
        ("12345678", "123*5678"),  # 8: first 3, last 4
        ("", ""),
    ],
)
def test_id_number_masking_boundaries(value, masked):
    assert mask_id_number(value) == masked


def test_email_masking_keeps_the_domain_after_the_first_at():
    assert mask_email("@school.edu.cn") == "****@school.edu.cn"
    assert mask_email("a@b@c") == "a***@b@c"


@pytest.mark.parametrize(
    "value,masked",
    [
        (None, ""),
        ("", ""),
        ("abcdef", "******"),  # 6 or fewer: nothing shown
        ("abcdefg", "abcdef…fg"),
    ],
)
def test_device_masking_boundaries(value, masked):
    assert mask_device(value) == masked


def test_email_length_limit_is_254_inclusive():
    domain = "@school.edu.cn"
    longest = "a" * (254 - len(domain)) + domain
    assert normalise_email(longest) == longest
    with pytest.raises(InvalidRequest) as caught:
        normalise_email("a" + longest)
    assert caught.value.code == "email_invalid"


def test_email_domain_is_lower_cased_and_local_part_kept():
    assert normalise_email(" Li.Si@School.EDU.cn ") == "Li.Si@school.edu.cn"


@pytest.mark.parametrize("raw", [None, "", "12345", "+1 415 555 0100", "010-12345678"])
def test_non_mobile_numbers_are_refused_with_their_code(raw):
    with pytest.raises(InvalidRequest) as caught:
        normalise_mobile(raw)
    assert caught.value.code == "phone_invalid"


def test_mobile_forms_normalise_to_e164():
    for raw in ("13812345678", "+86 138 1234 5678", "8613812345678"):
        assert normalise_mobile(raw) == "+8613812345678"


def test_a_mobile_with_characters_a_phone_has_not_is_refused():
    """phonenumbers' parser skips them; schemathesis sent "16105920616*"."""
    import pytest

    from services.common.contract.errors import InvalidRequest
    from services.common.rules.contacts import normalise_mobile

    for raw in ("16105920616*", "13812345678#", "138x12345678", "+86.138", ""):
        with pytest.raises(InvalidRequest):
            normalise_mobile(raw)
    assert normalise_mobile(" (+86) 138-1234 5678 ") == "+8613812345678"
    # A full-width digit from a Chinese input method is a digit.
    assert normalise_mobile("1381234567８") == "+8613812345678"
