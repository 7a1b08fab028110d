"""Rules of the school registry that need no broker or database.

Schools: a school's API token is 256 random bits with a recognisable
prefix, stored only as a keyed hash; what an audit record may hold.
Registry verification: the state diagram and the matching rules below.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import re
import secrets
import unicodedata
from dataclasses import dataclass

from services.common.realname import comparable_name, normalise_id, to_simplified

__all__ = [
    "new_school_token",
    "TOKEN_PREFIX",
    "audit_object_ids",
    "Outcome",
    "match",
    "linked_outcome",
    "submitted_id",
    "comparable_label",
    "NOT_RECHECKED",
]

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
#          ├─► fields differ after normalisation ───────► failed  <first>_mismatch
#          └─► everything agrees ───────────────────────► passed
#
#   roster data for (school, number) arrives or changes ─► the same check again
#   (pending and failed rows pass by themselves; a passed row follows its
#   record); identity's auth_info_changed(registry_reset) ─► pending
#   resubmission_needed (the old submission no longer describes the account,
#   so it is not re-checked); a school admin's manual link ─► passed (record
#   activity still followed).

# Which mismatch names the failure when several fields differ.
MISMATCH_ORDER = ("id_number", "name", "class_name", "grade")
# Codes that a later roster change must not re-check.
NOT_RECHECKED = ("resubmission_needed",)


@dataclass(frozen=True)
class Outcome:
    status: str
    code: str | None = None
    mismatches: tuple = ()
    student_id: object = None
    class_name: str | None = None


def comparable_label(raw):
    """A class or grade label as two systems may write it: NFKC (full-width),
    no spaces, simplified, case-folded. ``七年级 1 班`` == ``七年級1班``."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if not ch.isspace())
    return to_simplified(text).casefold() or None


def submitted_id(raw, today):
    """The normalised number of a student's ID (resident ID rules when it
    looks like one — 15 or 18 characters of digits and X — else ``other``);
    a bad one is the student's mistake, refused with the rule's code."""
    cleaned = unicodedata.normalize("NFKC", raw or "").replace(" ", "").upper()
    id_type = "resident_id" if re.fullmatch(r"\d{15}|\d{17}[\dX]", cleaned) else "other"
    return normalise_id(id_type, raw, today).number


def match(submission, record, claimed_by_other, id_hash_of):
    """The outcome of comparing a submission with a live registry record.

    ``submission``: name, class_name, grade, id_number (normalised or None);
    ``record``: name_key, class_names (class_name and class memberships),
    grade, id_hash, active, status; ``id_hash_of``: the lookup hash."""
    if record is None:
        return Outcome("failed", "not_in_registry")
    if not record["active"] or (record["status"] or "active") != "active":
        return Outcome("failed", "record_inactive", student_id=record["id"])
    if claimed_by_other:
        return Outcome("failed", "record_claimed", student_id=record["id"])
    mismatches = set()
    if submission.get("id_number") and record["id_hash"] != id_hash_of(
        submission["id_number"]
    ):
        mismatches.add("id_number")
    if comparable_name(submission["name"]) != record["name_key"]:
        mismatches.add("name")
    wanted_class = comparable_label(submission.get("class_name"))
    known_classes = {comparable_label(c) for c in record["class_names"] if c}
    if wanted_class and known_classes and wanted_class not in known_classes:
        mismatches.add("class_name")
    wanted_grade = comparable_label(submission.get("grade"))
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
    return Outcome("passed", student_id=record["id"], class_name=class_name)


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
