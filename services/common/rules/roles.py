"""Roles of staff accounts, as identity stores them and the gateway checks
them: plain strings in the account's ``roles``, a school admin's scoped to
its school as ``school_admin:<SCHOOL CODE>``. Every account is a
``student``; the others are granted by ops."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import re

from services.common.contract.errors import InvalidRequest, RuleViolation

__all__ = [
    "STAFF_ROLES",
    "SCHOOL_CODE_PATTERN",
    "role_names",
    "has_role",
    "admin_of",
    "normalise_school_code",
]

STAFF_ROLES = ("school_admin", "reviewer", "ops")
# A school's code as the ministry lists it: letters, digits, - and _.
SCHOOL_CODE_PATTERN = r"^[0-9A-Z][0-9A-Z_-]{1,31}$"
_SCHOOL_CODE = re.compile(SCHOOL_CODE_PATTERN)


def normalise_school_code(raw):
    code = (raw or "").strip().upper()
    if not _SCHOOL_CODE.match(code):
        raise InvalidRequest("school_code_invalid")
    return code


def role_names(requested):
    """``[{role, school_code?}]`` → the sorted role strings to store (with
    ``student`` always); ``school_admin`` needs a school, the others none
    (422: well-formed grants that break the pairing rule)."""
    names = {"student"}
    for entry in requested:
        role, school = entry["role"], entry.get("school_code")
        if role not in STAFF_ROLES:
            raise InvalidRequest("role_invalid", {"role": role})
        if role == "school_admin":
            if not school:
                raise RuleViolation("role_needs_school")
            names.add(f"school_admin:{normalise_school_code(school)}")
        elif school:
            raise RuleViolation("role_has_no_school", {"role": role})
        else:
            names.add(role)
    return sorted(names)


def has_role(roles, role, school_code=None):
    """Whether ``roles`` (a principal's) holds ``role`` (for ``school_code``)."""
    if role == "school_admin":
        return f"school_admin:{school_code}" in roles
    return role in roles


def admin_of(roles, school_code):
    """May act as an admin of ``school_code``: its school admin, or ops."""
    return has_role(roles, "ops") or has_role(roles, "school_admin", school_code)
