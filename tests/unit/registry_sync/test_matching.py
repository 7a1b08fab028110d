"""Registry matching rules (domain.match) as a table: the record is compared
with the account's own real-name data (never with what the form typed);
what passes, what fails with which code, and which fields are named."""

import uuid
from datetime import date

import pytest

from services.registry_sync import domain

BORN = date(1949, 12, 31)
OWN_ID = "11010519491231002X"


def record(**overrides):
    base = {
        "id": uuid.uuid4(),
        "name_key": "张三",
        "class_names": ["七年级1班"],
        "grade": "七年级",
        "id_hash": f"hash:{OWN_ID}",
        "active": True,
        "status": "active",
    }
    return {**base, **overrides}


def own(**overrides):
    """The account as identity holds it: a resident ID with its birth date."""
    base = {"name": "张三", "id_type": "resident_id", "id_number": OWN_ID,
            "birth_date": BORN}  # fmt: skip
    return {**base, **overrides}


def located(**overrides):
    return {"class_name": None, "grade": None, **overrides}


def hash_of(number):
    return f"hash:{number}"


@pytest.mark.parametrize(
    "account, form, registry, status, code, mismatches",
    [
        (own(), located(), record(), "passed", None, ()),
        (own(name="張三"), located(), record(), "passed", None, ()),
        (own(name="张 三"), located(), record(), "passed", None, ()),
        (own(), located(class_name="七年级 1 班"), record(), "passed", None, ()),
        (own(), located(class_name="七年級1班"), record(), "passed", None, ()),
        (
            own(),
            located(class_name="一班"),
            record(class_names=[None, "一班"]),
            "passed",
            None,
            (),
        ),  # fmt: skip
        (
            own(),
            located(class_name="任意"),
            record(class_names=[None]),
            "passed",
            None,
            (),
        ),  # fmt: skip
        # A record without an ID number: a checksummed ID with a birth date
        # and the same name stands for the person.
        (own(), located(), record(id_hash=None), "passed", None, ()),
        # ... a passport, an "other" document or none at all cannot.
        (
            own(id_type="passport", id_number="E12345678", birth_date=None),
            located(),
            record(id_hash=None),
            "failed",
            "id_document_unverifiable",
            (),
        ),  # fmt: skip
        (
            own(id_type=None, id_number=None, birth_date=None),
            located(),
            record(id_hash=None),
            "failed",
            "id_document_unverifiable",
            (),
        ),  # fmt: skip
        # ... but they pass against a record holding their own number.
        (
            own(id_type="other", id_number="X-2024-77", birth_date=None),
            located(),
            record(id_hash="hash:X-2024-77"),
            "passed",
            None,
            (),
        ),  # fmt: skip
        # The record holds an ID number: the account's must be the same one.
        (
            own(id_number="110105200001011234"),
            located(),
            record(),
            "failed",
            "id_number_mismatch",
            ("id_number",),
        ),  # fmt: skip
        (
            own(id_type=None, id_number=None, birth_date=None),
            located(),
            record(),
            "failed",
            "id_number_mismatch",
            ("id_number",),
        ),  # fmt: skip
        # A record holding a birth date: the account's ID must say the same.
        (
            own(),
            located(),
            record(id_hash=None, birth_date=date(2001, 1, 1)),
            "failed",
            "birth_date_mismatch",
            ("birth_date",),
        ),  # fmt: skip
        (own(name="张山"), located(), record(), "failed", "name_mismatch", ("name",)),
        (own(name=None), located(), record(), "failed", "name_mismatch", ("name",)),
        (
            own(),
            located(class_name="二班"),
            record(),
            "failed",
            "class_name_mismatch",
            ("class_name",),
        ),  # fmt: skip
        (
            own(),
            located(grade="八年级"),
            record(),
            "failed",
            "grade_mismatch",
            ("grade",),
        ),  # fmt: skip
        (
            own(name="李四", id_number="1"),
            located(class_name="二班"),
            record(),
            "failed",
            "id_number_mismatch",
            ("id_number", "name", "class_name"),
        ),  # fmt: skip
        (own(), located(), None, "failed", "not_in_registry", ()),
        (own(), located(), record(active=False), "failed", "record_inactive", ()),
        (
            own(),
            located(),
            record(status="transferred"),
            "failed",
            "record_inactive",
            (),
        ),  # fmt: skip
    ],
)
def test_matching_table(account, form, registry, status, code, mismatches):
    outcome = domain.match(account, form, registry, False, hash_of)
    assert (outcome.status, outcome.code, outcome.mismatches) == (
        status,
        code,
        mismatches,
    )


def test_what_the_form_typed_decides_nothing():
    """The attack of issue #20 §1: an account with its own name and ID types
    a classmate's name and student number. The typed name is sealed for the
    school's eyes; the comparison uses the account's own name."""
    attacker = own(name="李四", id_number="110105200001011234")
    sealed = domain.new_submission(attacker, typed_name="张三")
    outcome = domain.match_submission(sealed, record(), False, hash_of)
    assert (outcome.status, outcome.code) == ("failed", "id_number_mismatch")
    no_id_record = domain.match_submission(sealed, record(id_hash=None), False, hash_of)
    assert (no_id_record.status, no_id_record.code) == ("failed", "name_mismatch")


def test_a_sealed_submission_round_trips_the_birth_date():
    sealed = domain.new_submission(own(), class_name="七年级1班", typed_name="张三")
    assert sealed["own"]["birth_date"] == "1949-12-31"
    assert domain.match_submission(sealed, record(), False, hash_of).status == "passed"


def test_a_submission_sealed_before_own_identity_was_kept_is_resubmitted():
    old = {"name": "张三", "class_name": None, "grade": None, "id_number": None}
    outcome = domain.match_submission(old, record(), False, hash_of)
    assert (outcome.status, outcome.code) == ("pending", "resubmission_needed")


def test_a_claimed_record_fails_before_any_comparison():
    outcome = domain.match(own(name="别人"), located(), record(), True, hash_of)
    assert (outcome.status, outcome.code, outcome.mismatches) == (
        "failed",
        "record_claimed",
        (),
    )
    assert domain.NEXT_STEPS["record_claimed"] == "duplicate_id"


def test_a_linked_account_follows_its_record():
    assert domain.linked_outcome(record()).status == "passed"
    assert domain.linked_outcome(record(status="graduated")).code == "record_inactive"
    assert domain.linked_outcome(None).code == "not_in_registry"


@pytest.mark.parametrize(
    "current, allowed",
    [
        (None, True),
        ({"school_code": "A1", "status": "passed"}, True),
        ({"school_code": "A1", "status": "failed"}, True),
        ({"school_code": "B2", "status": "failed"}, True),
        ({"school_code": "B2", "status": "pending"}, True),
        ({"school_code": "B2", "status": "passed"}, False),
    ],
)
def test_an_admin_links_only_its_own_or_unverified_accounts(current, allowed):
    assert domain.may_link(current, "A1") is allowed
