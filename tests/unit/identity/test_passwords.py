"""Password rules: length only, no composition rules, common ones refused;
argon2id with at least OWASP's parameters."""

import pytest

from services.common.contract.errors import RuleViolation
from services.identity.passwords import (
    check_password_rules,
    new_hasher,
    verify_password,
)


@pytest.mark.parametrize(
    "password", ["correct horse", "八个汉字的密码啊", "a" * 64, "lowercaseonly"]
)
def test_any_characters_of_8_to_64_are_fine(password):
    assert check_password_rules(password) == password


@pytest.mark.parametrize(
    "password,code",
    [
        ("short12", "password_too_short"),
        ("a" * 65, "password_too_long"),
        ("12345678", "password_too_common"),
        ("Woaini1314", "password_too_common"),  # case does not rescue it
        ("1qaz2wsx", "password_too_common"),
    ],
)
def test_refusals_name_the_rule(password, code):
    with pytest.raises(RuleViolation) as caught:
        check_password_rules(password)
    assert caught.value.code == code


def test_argon2id_with_owasp_minimum_parameters_and_verification():
    hasher = new_hasher()
    stored = hasher.hash("a long enough secret")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(hasher, stored, "a long enough secret")
    assert not verify_password(hasher, stored, "a long enough secreT")
    assert not verify_password(hasher, "not-a-hash", "x")
