"""One spelling per login (issue #20 §4): every way a person types a login
that identity resolves to one account gives one throttle key. Properties
over spellings that identity's resolution treats alike: spaces anywhere,
full-width forms (NFKC), a small ``x``/``p``, ``+86`` and separators in a
mobile, the 15-digit legacy form of a resident ID."""

import random
import unicodedata
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.rules.contacts import canonical_login, canonical_text
from services.common.rules.realname import normalise_id, resident_check_char
from services.identity.domain import id_number_candidates

TODAY = date(2026, 12, 6)


def full_width(text):
    """What a Chinese keyboard's full-width mode types for ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@st.composite
def respelled(draw, canonical):
    """``canonical`` typed some other way identity still resolves."""
    chars = list(canonical)
    out = []
    for ch in chars:
        if draw(st.booleans()):
            ch = full_width(ch)
        if ch.isalpha() and draw(st.booleans()):
            ch = ch.lower()
        out.append(ch)
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from([" ", "\u3000", "\t", "\u00a0"])))
    return "".join(out)


def resident_ids():
    return st.builds(
        lambda region, born, seq: (
            (region + born + seq) + resident_check_char(region + born + seq)
        ),
        st.sampled_from(["110105", "320102", "440305"]),
        st.dates(date(1950, 1, 1), date(2015, 12, 31)).map(
            lambda d: d.strftime("%Y%m%d")
        ),
        st.integers(0, 999).map(lambda n: f"{n:03d}"),
    )


@settings(max_examples=300, derandomize=True)
@given(st.data(), resident_ids())
def test_every_spelling_of_a_resident_id_is_one_key(data, number):
    spelled = data.draw(respelled(number))
    assert canonical_login(spelled, TODAY) == ("id_number", number)
    # ... and it is the number identity resolves the login to.
    assert ("resident_id", number) in id_number_candidates(spelled, TODAY)


@settings(max_examples=200, derandomize=True)
@given(st.data(), st.dates(date(1950, 1, 1), date(1999, 12, 31)))
def test_a_legacy_15_digit_id_is_the_key_of_its_18_digit_form(data, born):
    legacy = "110105" + born.strftime("%y%m%d") + "123"
    number = normalise_id("resident_id", legacy, TODAY).number
    assert canonical_login(data.draw(respelled(legacy)), TODAY)[1] == number


@settings(max_examples=200, derandomize=True)
@given(st.data(), st.integers(0, 99_999_999))
def test_every_spelling_of_a_mobile_is_one_key(data, tail):
    phone = f"138{tail:08d}"
    prefix = data.draw(st.sampled_from(["", "+86", "86", "+86 "]))
    spelled = data.draw(respelled(prefix + phone))
    assert canonical_login(spelled, TODAY) == ("phone", "+86" + phone)


@pytest.mark.parametrize(
    "spelled",
    [
        "p23456789abcd",
        "Ｐ23456789ABCD",
        " P2345 6789ABCD ",
        "ｐ２３４５６７８９ａｂｃｄ",
    ],
)
def test_every_spelling_of_a_passport_id_is_one_key(spelled):
    assert canonical_login(spelled) == ("passport", "P23456789ABCD")


@pytest.mark.parametrize(
    "spelled", ["li@school.edu.cn", " li@School.EDU.cn", "ｌｉ＠school.edu.cn"]
)
def test_every_spelling_of_an_email_is_one_key(spelled):
    assert canonical_login(spelled) == ("email", "li@school.edu.cn")


def test_school_and_student_numbers_key_one_way():
    assert canonical_text(" ｂｊ 101 ") == canonical_text("BJ101") == "BJ101"
    assert canonical_text("2024\u3000001") == "2024001"


def test_respelling_really_changes_the_text():
    """The strategies above are not vacuous: they produce other strings."""
    rng = random.Random(7)
    number = "11010519491231002X"
    spelled = "".join(full_width(c) if rng.random() < 0.5 else c for c in number)
    assert spelled != number and unicodedata.normalize("NFKC", spelled) == number


@pytest.mark.parametrize(
    "raw, key",
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("", "unknown"),
        (None, "unknown"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_a_per_address_limit_counts_ipv6_by_its_64(raw, key):
    from services.common.rules.throttles import address_key

    assert address_key(raw) == key
