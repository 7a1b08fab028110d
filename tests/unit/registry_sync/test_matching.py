"""Registry matching rules (domain.match) as a table: what passes, what
fails with which code, and which fields are named."""

import uuid
from datetime import date

import pytest

from services.common.errors import RuleViolation
from services.registry_sync import domain


def record(**overrides):
    base = {
        "id": uuid.uuid4(),
        "name_key": "张三",
        "class_names": ["七年级1班"],
        "grade": "七年级",
        "id_hash": "hash:11010519491231002X",
        "active": True,
        "status": "active",
    }
    return {**base, **overrides}


def submission(**overrides):
    base = {"name": "张三", "class_name": None, "grade": None, "id_number": None}
    return {**base, **overrides}


def hash_of(number):
    return f"hash:{number}"


@pytest.mark.parametrize(
    "given, registry, status, code, mismatches",
    [
        (submission(), record(), "passed", None, ()),
        (submission(name="張三"), record(), "passed", None, ()),
        (submission(name="张 三"), record(), "passed", None, ()),
        (submission(class_name="七年级 1 班"), record(), "passed", None, ()),
        (submission(class_name="七年級1班"), record(), "passed", None, ()),
        (
            submission(class_name="一班"),
            record(class_names=[None, "一班"]),
            "passed",
            None,
            (),
        ),
        (submission(class_name="任意"), record(class_names=[None]), "passed", None, ()),
        (submission(id_number="11010519491231002X"), record(), "passed", None, ()),
        (
            submission(id_number="11010519491231002X"),
            record(id_hash=None),
            "failed",
            "id_number_mismatch",
            ("id_number",),
        ),
        (submission(name="张山"), record(), "failed", "name_mismatch", ("name",)),
        (
            submission(class_name="二班"),
            record(),
            "failed",
            "class_name_mismatch",
            ("class_name",),
        ),
        (submission(grade="八年级"), record(), "failed", "grade_mismatch", ("grade",)),
        (
            submission(name="李四", class_name="二班", id_number="1"),
            record(),
            "failed",
            "id_number_mismatch",
            ("id_number", "name", "class_name"),
        ),
        (submission(), None, "failed", "not_in_registry", ()),
        (submission(), record(active=False), "failed", "record_inactive", ()),
        (submission(), record(status="transferred"), "failed", "record_inactive", ()),
    ],
)
def test_matching_table(given, registry, status, code, mismatches):
    outcome = domain.match(given, registry, False, hash_of)
    assert (outcome.status, outcome.code, outcome.mismatches) == (
        status,
        code,
        mismatches,
    )


def test_a_claimed_record_fails_before_any_comparison():
    outcome = domain.match(submission(name="别人"), record(), True, hash_of)
    assert (outcome.status, outcome.code, outcome.mismatches) == (
        "failed",
        "record_claimed",
        (),
    )


def test_a_linked_account_follows_its_record():
    assert domain.linked_outcome(record()).status == "passed"
    assert domain.linked_outcome(record(status="graduated")).code == "record_inactive"
    assert domain.linked_outcome(None).code == "not_in_registry"


@pytest.mark.parametrize(
    "typed, number",
    [
        ("11010519491231002x", "11010519491231002X"),
        ("110105 19491231 002X", "11010519491231002X"),
        ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X"),
        ("110105491231002", "11010519491231002X"),  # 15-digit legacy card
        ("E12345678", "E12345678"),  # not resident-shaped: checked as "other"
    ],
)
def test_a_students_id_is_normalised(typed, number):
    assert domain.submitted_id(typed, date(2026, 11, 25)) == number


def test_a_students_bad_resident_id_is_refused_with_the_rule():
    with pytest.raises(RuleViolation) as refused:
        domain.submitted_id("110105194912310021", date(2026, 11, 25))
    assert refused.value.code == "id_checksum_invalid"
