"""Rules the unit tier reached only through the e2e tier before `make mutate`
showed them untested here: auth-info field checks, limited accounts, the
guardian rule, lock refusals, deactivation refusals, session tokens."""

from datetime import date

import pytest

from services.common.contract.errors import Forbidden, RuleViolation
from services.identity import domain

TODAY = date(2026, 11, 24)


def refusal(fn, *args):
    with pytest.raises((RuleViolation, Forbidden)) as caught:
        fn(*args)
    return caught.value


def test_auth_info_fields_are_each_checked_and_cleaned():
    assert domain.check_auth_info(
        {
            "school_code": " bj101 ",
            "student_number": "a-7",
            "name": "张三",
            "department": " 计算机系 ",
            "enrollment_year": 2024,
            "ignored": "x",
        },
        TODAY,
    ) == {
        "school_code": "BJ101",
        "student_number": "A-7",
        "name": "张三",
        "department": "计算机系",
        "enrollment_year": 2024,
    }
    assert domain.check_auth_info({"school_code": None, "name": "李四"}, TODAY) == {
        "name": "李四"
    }


@pytest.mark.parametrize(
    "field,value,code",
    [
        ("school_code", "B", "school_code_invalid"),
        ("school_code", "_BJ", "school_code_invalid"),
        ("school_code", "B" * 33, "school_code_invalid"),
        ("student_number", "-1", "student_number_invalid"),
        ("student_number", "1" * 33, "student_number_invalid"),
        ("department", "", "department_invalid"),
        ("department", "x" * 65, "department_invalid"),
        ("department", "系\x07", "department_invalid"),
        ("enrollment_year", 1949, "enrollment_year_invalid"),
        ("enrollment_year", 2028, "enrollment_year_invalid"),
        ("enrollment_year", "2024", "enrollment_year_invalid"),
    ],
)
def test_each_bad_field_has_its_code(field, value, code):
    assert refusal(domain.check_auth_info, {field: value}, TODAY).code == code


@pytest.mark.parametrize(
    "field,value",
    [
        ("school_code", "BJ"),
        ("student_number", "1" * 32),
        ("department", "x" * 64),
        ("enrollment_year", 1950),
        ("enrollment_year", 2027),
    ],
)
def test_field_boundaries_accepted(field, value):
    assert domain.check_auth_info({field: value}, TODAY) == {field: value}


def test_only_changed_fields_count_and_none_is_refused():
    account = {"school_code": "BJ101", "name": "张三", "department": "数学系"}
    assert domain.changed_auth_fields(
        account, {"school_code": "BJ101", "name": "李四", "department": "物理系"}
    ) == ["department", "name"]
    assert (
        refusal(domain.changed_auth_fields, account, {"name": "张三"}).code
        == "nothing_to_change"
    )


def test_a_duplicate_pending_account_is_limited():
    assert domain.require_unlimited({"status": "active"}) is None
    limited = refusal(domain.require_unlimited, {"status": "duplicate_pending"})
    assert isinstance(limited, Forbidden) and limited.code == "account_limited"


def test_guardian_only_for_children_or_accounts_without_a_birth_date():
    assert domain.check_guardian_allowed(date(2015, 1, 1), TODAY) is None
    assert domain.check_guardian_allowed(None, TODAY) is None
    assert (
        refusal(domain.check_guardian_allowed, date(2012, 11, 24), TODAY).code
        == "guardian_not_needed"
    )


def test_locked_fields_are_named_in_the_refusal():
    permissions = {
        "name": {"changeable": False, "reason": "course_in_progress", "unlocks_at": 7},
        "department": {"changeable": True, "reason": None, "unlocks_at": None},
    }
    assert domain.refuse_locked(permissions, ["department"]) is None
    locked = refusal(domain.refuse_locked, permissions, ["department", "name"])
    assert locked.code == "field_locked"
    assert locked.extra == {
        "locked_fields": [
            {"field": "name", "reason": "course_in_progress", "unlocks_at": 7}
        ]
    }


def test_deactivation_refusal_lists_every_unmet_condition():
    assert domain.require_eligible([]) is None
    unmet = [{"condition": "wallet_balance", "detail": {"balance_fen": 1}}]
    refused = refusal(domain.require_eligible, unmet)
    assert refused.code == "not_eligible" and refused.extra == {"unmet": unmet}


def test_session_tokens_are_long_random_and_url_safe():
    tokens = {domain.new_session_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(
        len(t) >= 43 and t.replace("-", "").replace("_", "").isalnum() for t in tokens
    )
