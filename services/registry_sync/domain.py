"""Rules of the school registry that need no broker or database.

Schools: a school's API token is 256 random bits with a recognisable
prefix, stored only as a keyed hash; what an audit record may hold.
Registry verification: the state diagram and the matching rules below.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import secrets
from dataclasses import dataclass
from datetime import date

from services.common.contract.errors import RuleViolation
from services.common.rules.masking import mask_id_number
from services.common.rules.realname import (
    comparable_label,
    comparable_name,
    normalise_id,
)

__all__ = [
    "new_school_token",
    "TOKEN_PREFIX",
    "audit_object_ids",
    "Outcome",
    "match",
    "proves_itself",
    "NEXT_STEPS",
    "linked_outcome",
    "new_submission",
    "match_submission",
    "may_link",
    "comparable_label",
    "NOT_RECHECKED",
    "STUDENT_URN",
    "sealable_id",
    "id_hint",
]

# A student record's extension schema (SCIM) and document key (OneRoster).
STUDENT_URN = (
    "urn:student-selfservice:params:scim:schemas:extension:student:2.0:Student"
)


def sealable_id(id_type, raw, today):
    """(number to seal, problem): the normalised number when it passes its
    type's rules, else the cleaned value as given and the failed rule's code."""
    try:
        checked = normalise_id(id_type or "resident_id", raw, today)
        return checked.number, None
    except RuleViolation as exc:
        return " ".join(raw.split()).upper(), exc.code


def id_hint(number):
    """What answers and logs show of an ID number."""
    return mask_id_number(number) if number else None


# Recognisable in a leaked config file or a secret scanner's rules.
TOKEN_PREFIX = "sch_"


def new_school_token():
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def audit_object_ids(**ids):
    """The ids an audit record names, as strings; ``None`` ones left out.
    Only identifiers (codes, account ids, import ids) go here, never names,
    numbers or contacts."""
    return {key: str(value) for key, value in ids.items() if value is not None}


# -- registry verification (学籍核验) ---------------------------------------------
#
#   submit ──► school unknown ──────────────────────────► failed  school_not_onboarded
#          ├─► school has no roster yet ────────────────► pending school_not_synced
#          ├─► no live record with that student number ─► failed  not_in_registry
#          ├─► record not active (transferred, …) ──────► failed  record_inactive
#          ├─► another account holds the record ────────► failed  record_claimed
#          │                                              (next step: the duplicate-ID path)
#          ├─► the account's own identity differs ──────► failed  <first>_mismatch
#          ├─► the account's ID proves nothing alone ───► failed  id_document_unverifiable
#          ├─► class/grade located elsewhere ───────────► failed  <first>_mismatch
#          └─► everything agrees ───────────────────────► passed
#
#   roster data for (school, number) arrives or changes ─► the same check again
#   (pending and failed rows pass by themselves; a passed row follows its
#   record); identity's auth_info_changed(registry_reset) ─► the account's
#   identity fetched again and the same check run on it; a school admin's
#   manual link ─► passed (record activity still followed).
#
# Who the student is comes from identity — the account's real name and ID
# document as registered — never from the form: the form only says where to
# look (school, student number, class, grade). An account proves itself by
#   * its name (comparable form) equal to the record's, and
#   * where the record holds an ID number, the same ID number (keyed hashes
#     equal); where it holds a birth date, the birth date of the account's ID.
# A record with no ID number can be matched by name alone only by an account
# whose ID document carries a checksum and a birth date (a resident ID or a
# residence permit): an account with a passport, an "other" document or none
# at all (student-number registration) could name anyone, so it passes only
# against a record that holds its own ID number, or by a school admin's link.

# Which mismatch names the failure when several fields differ.
MISMATCH_ORDER = ("id_number", "birth_date", "name", "class_name", "grade")
# Codes that a later roster change must not re-check.
NOT_RECHECKED = ("resubmission_needed",)
# What a student is pointed to after a failure with this code.
NEXT_STEPS = {
    "record_claimed": "duplicate_id",
    "id_document_unverifiable": "school_link",
}


@dataclass(frozen=True)
class Outcome:
    status: str
    code: str | None = None
    mismatches: tuple = ()
    student_id: object = None
    class_name: str | None = None


def proves_itself(own):
    """Does the account's ID document carry a checksum and a birth date
    (resident ID, residence permit, the 2023 permanent-residence card)? Only
    those can stand for a person against a record that holds no ID number."""
    return bool(own.get("id_number") and own.get("birth_date"))


def match(own, located, record, claimed_by_other, id_hash_of):
    """The outcome of comparing an account with a live registry record.

    ``own``: the account's real-name data from identity — name, id_type,
    id_number (normalised or None), birth_date (a date or None);
    ``located``: what the form said beyond school and number — class_name,
    grade (either may be None); ``record``: name_key, class_names (class_name
    and class memberships), grade, id_hash, birth_date (optional), active,
    status; ``id_hash_of``: the registry's lookup hash."""
    if record is None:
        return Outcome("failed", "not_in_registry")
    if not record["active"] or (record["status"] or "active") != "active":
        return Outcome("failed", "record_inactive", student_id=record["id"])
    if claimed_by_other:
        return Outcome("failed", "record_claimed", student_id=record["id"])
    mismatches = set()
    if record["id_hash"]:
        if not own.get("id_number") or record["id_hash"] != id_hash_of(
            own["id_number"]
        ):
            mismatches.add("id_number")
    record_birth = record.get("birth_date")
    if record_birth and own.get("birth_date") != record_birth:
        mismatches.add("birth_date")
    if not own.get("name") or comparable_name(own["name"]) != record["name_key"]:
        mismatches.add("name")
    wanted_class = comparable_label(located.get("class_name"))
    known_classes = {comparable_label(c) for c in record["class_names"] if c}
    if wanted_class and known_classes and wanted_class not in known_classes:
        mismatches.add("class_name")
    wanted_grade = comparable_label(located.get("grade"))
    known_grade = comparable_label(record["grade"])
    if wanted_grade and known_grade and wanted_grade != known_grade:
        mismatches.add("grade")
    class_name = next((c for c in record["class_names"] if c), None)
    if mismatches:
        ordered = tuple(field for field in MISMATCH_ORDER if field in mismatches)
        return Outcome(
            "failed",
            f"{ordered[0]}_mismatch",
            ordered,
            student_id=record["id"],
            class_name=class_name,
        )
    if not record["id_hash"] and not proves_itself(own):
        return Outcome(
            "failed",
            "id_document_unverifiable",
            student_id=record["id"],
            class_name=class_name,
        )
    return Outcome("passed", student_id=record["id"], class_name=class_name)


def new_submission(own, class_name=None, grade=None, typed_name=None):
    """What is sealed with a verification: the account's own identity as
    identity gave it (``identity.real_name_of``'s answer; only the real-name
    fields are kept, a birth date as ISO text) and where the form located
    the record. ``typed_name`` is kept for the school's eyes, never compared."""
    birth = own.get("birth_date")
    return {
        "own": {
            "name": own.get("name"),
            "id_type": own.get("id_type"),
            "id_number": own.get("id_number"),
            "birth_date": birth.isoformat() if hasattr(birth, "isoformat") else birth,
        },
        "class_name": class_name,
        "grade": grade,
        "typed_name": typed_name,
    }


def match_submission(submission, record, claimed_by_other, id_hash_of):
    """``match`` on a sealed submission. One sealed before the account's own
    identity was kept (it holds only what was typed) proves nothing: the
    student submits again."""
    own = submission.get("own")
    if own is None:
        return Outcome("pending", "resubmission_needed")
    birth = own.get("birth_date")
    own = {**own, "birth_date": date.fromisoformat(birth) if birth else None}
    return match(own, submission, record, claimed_by_other, id_hash_of)


def may_link(current, school_code):
    """May an admin of ``school_code`` link this account by hand? Only an
    account that submitted its verification to this school, or holds no
    passed verification anywhere (``current``: its verification row)."""
    if current is None:
        return True
    return current["school_code"] == school_code or current["status"] != "passed"


def linked_outcome(record):
    """A school admin's manual link: passed while the record stays active."""
    if record is None:
        return Outcome("failed", "not_in_registry")
    if not record["active"] or (record["status"] or "active") != "active":
        return Outcome("failed", "record_inactive", student_id=record["id"])
    class_name = next((c for c in record["class_names"] if c), None)
    return Outcome("passed", student_id=record["id"], class_name=class_name)


# -- enrolments and change windows ---------------------------------------------------


def current_terms(explicit, covering, any_term):
    """The terms whose enrolments drive identity's lock rules: the school's
    explicit setting, else its active terms/semesters covering today (from
    academicSessions); ``None`` when the school has said nothing about terms,
    and then every pushed term counts as current."""
    if explicit:
        return {explicit}
    if any_term:
        return set(covering)
    return None


def window_id(fields, starts_at, ends_at):
    """A change window's id when the school gives none: the same window
    pushed twice is the same window."""
    import hashlib

    key = "|".join(
        [",".join(sorted(fields)), starts_at.isoformat(), ends_at.isoformat()]
    )
    return "w-" + hashlib.sha256(key.encode()).hexdigest()[:24]
