"""Staff roles as stored and checked."""

import pytest

from services.common.contract.errors import InvalidRequest, RuleViolation
from services.common.rules.roles import (
    admin_of,
    has_role,
    normalise_school_code,
    role_names,
)


def test_grants_become_sorted_role_strings_with_student_always():
    assert role_names([]) == ["student"]
    assert role_names(
        [
            {"role": "school_admin", "school_code": " bj101 "},
            {"role": "reviewer"},
            {"role": "reviewer", "school_code": None},
        ]
    ) == ["reviewer", "school_admin:BJ101", "student"]


@pytest.mark.parametrize(
    "grant,error,code",
    [
        ({"role": "school_admin"}, RuleViolation, "role_needs_school"),
        ({"role": "ops", "school_code": "X1"}, RuleViolation, "role_has_no_school"),
        ({"role": "root"}, InvalidRequest, "role_invalid"),
        (
            {"role": "school_admin", "school_code": "a b"},
            InvalidRequest,
            "school_code_invalid",
        ),
    ],
)
def test_bad_grants(grant, error, code):
    with pytest.raises(error) as caught:
        role_names([grant])
    assert caught.value.code == code


def test_a_school_admin_is_admin_of_its_school_only_and_ops_of_all():
    roles = ["student", "school_admin:BJ101"]
    assert has_role(roles, "school_admin", "BJ101")
    assert not has_role(roles, "school_admin", "BJ102")
    assert admin_of(roles, "BJ101") and not admin_of(roles, "BJ102")
    assert admin_of(["student", "ops"], "ANY1")
    assert not admin_of(["student", "reviewer"], "BJ101")
    # A prefix is not a school: BJ1 must not match BJ101.
    assert not admin_of(["school_admin:BJ1"], "BJ101")
    assert normalise_school_code("bj-1_0") == "BJ-1_0"
