"""All SQL of the registry_sync service."""

import json
import re
from datetime import datetime, timezone

from psycopg2.extras import Json, register_uuid
from scim2_models.path import AttrPath, FilterVisitor

from services.common.contract.errors import Conflict, InvalidRequest
from services.common.plumbing.context import current_request_id
from services.common.plumbing.db import Store
from services.registry_sync import domain

__all__ = ["RegistryStore", "FilterSql"]

# Resource ids are UUIDs; psycopg2 adapts them (and arrays of them) once this
# is registered.
register_uuid()

INSERT_SCHOOL_SQL = """
INSERT INTO schools (code, name, region, token_hash, token_issued_at, created_at)
VALUES (%(code)s, %(name)s, %(region)s, %(token_hash)s, %(now)s, %(now)s)
"""

ROTATE_TOKEN_SQL = """
UPDATE schools SET token_hash = %(token_hash)s, token_issued_at = %(now)s
 WHERE code = %(code)s
"""

SCHOOL_SQL = """
SELECT code, name, region, token_issued_at, created_at FROM schools
 WHERE code = %(code)s
"""

SCHOOL_BY_TOKEN_SQL = "SELECT code, name FROM schools WHERE token_hash = %(token_hash)s"

INSERT_AUDIT_SQL = """
INSERT INTO audit_log (actor, school_code, action, object_ids, request_id, at)
VALUES (%(actor)s, %(school_code)s, %(action)s, %(object_ids)s, %(request_id)s, %(at)s)
"""


# -- SCIM: students (Users) and classes (Groups) --------------------------------
STUDENT_COLUMNS = """id, school_code, user_name, external_id, student_number, family_name,
given_name, formatted_name, display_name, name_key, active, status, id_type, id_hint,
id_problem, id_sealed, grade, class_name, department, enrollment_year, doc, source,
version, created_at, updated_at"""

INSERT_STUDENT_SQL = f"""
INSERT INTO students (id, school_code, user_name, external_id, student_number,
    family_name, given_name, formatted_name, display_name, name_key, active, status,
    id_type, id_sealed, id_hash, id_hint, id_problem, grade, class_name, department,
    enrollment_year, doc, source, created_at, updated_at)
VALUES (%(id)s, %(school_code)s, %(user_name)s, %(external_id)s, %(student_number)s,
    %(family_name)s, %(given_name)s, %(formatted_name)s, %(display_name)s,
    %(name_key)s, %(active)s, %(status)s, %(id_type)s, %(id_sealed)s, %(id_hash)s,
    %(id_hint)s, %(id_problem)s, %(grade)s, %(class_name)s, %(department)s,
    %(enrollment_year)s, %(doc)s, 'scim', %(now)s, %(now)s)
RETURNING {STUDENT_COLUMNS}
"""

STUDENT_SQL = f"""
SELECT {STUDENT_COLUMNS} FROM students
 WHERE school_code = %(school_code)s AND id = %(id)s AND deleted_at IS NULL
"""

# The ID columns change only when the request carried an ID number
# (PATCH/PUT without one keeps the sealed value: it is write-only).
UPDATE_STUDENT_SQL = f"""
UPDATE students SET user_name = %(user_name)s, external_id = %(external_id)s,
       student_number = %(student_number)s, family_name = %(family_name)s,
       given_name = %(given_name)s, formatted_name = %(formatted_name)s,
       display_name = %(display_name)s, name_key = %(name_key)s, active = %(active)s,
       status = %(status)s, id_type = %(id_type)s,
       id_sealed = CASE WHEN %(id_given)s THEN %(id_sealed)s ELSE id_sealed END,
       id_hash = CASE WHEN %(id_given)s THEN %(id_hash)s ELSE id_hash END,
       id_hint = CASE WHEN %(id_given)s THEN %(id_hint)s ELSE id_hint END,
       id_problem = CASE WHEN %(id_given)s THEN %(id_problem)s ELSE id_problem END,
       grade = %(grade)s, class_name = %(class_name)s, department = %(department)s,
       enrollment_year = %(enrollment_year)s, doc = %(doc)s, version = version + 1,
       updated_at = %(now)s
 WHERE school_code = %(school_code)s AND id = %(id)s AND deleted_at IS NULL
   AND version = %(version)s
RETURNING {STUDENT_COLUMNS}
"""

DELETE_STUDENT_SQL = """
UPDATE students SET deleted_at = %(now)s, updated_at = %(now)s, version = version + 1
 WHERE school_code = %(school_code)s AND id = %(id)s AND deleted_at IS NULL
   AND (%(version)s::integer IS NULL OR version = %(version)s::integer)
RETURNING id
"""

DROP_MEMBERSHIPS_SQL = "DELETE FROM class_members WHERE student_id = %(id)s"

GROUPS_OF_STUDENTS_SQL = """
SELECT m.student_id, c.id, c.display_name FROM class_members m
  JOIN classes c ON c.id = m.class_id AND c.deleted_at IS NULL
 WHERE m.student_id = ANY(%(ids)s::uuid[])
 ORDER BY c.display_name, c.id
"""

GROUP_COLUMNS = """id, school_code, display_name, external_id, doc, source, version,
created_at, updated_at"""

INSERT_GROUP_SQL = f"""
INSERT INTO classes (id, school_code, display_name, external_id, doc, source,
                     created_at, updated_at)
VALUES (%(id)s, %(school_code)s, %(display_name)s, %(external_id)s, %(doc)s, 'scim',
        %(now)s, %(now)s)
RETURNING {GROUP_COLUMNS}
"""

GROUP_SQL = f"""
SELECT {GROUP_COLUMNS} FROM classes
 WHERE school_code = %(school_code)s AND id = %(id)s AND deleted_at IS NULL
"""

UPDATE_GROUP_SQL = f"""
UPDATE classes SET display_name = %(display_name)s, external_id = %(external_id)s,
       doc = %(doc)s, version = version + 1, updated_at = %(now)s
 WHERE school_code = %(school_code)s AND id = %(id)s AND deleted_at IS NULL
   AND version = %(version)s
RETURNING {GROUP_COLUMNS}
"""

DELETE_GROUP_SQL = """
UPDATE classes SET deleted_at = %(now)s, updated_at = %(now)s, version = version + 1
 WHERE school_code = %(school_code)s AND id = %(id)s AND deleted_at IS NULL
   AND (%(version)s::integer IS NULL OR version = %(version)s::integer)
RETURNING id
"""

CLEAR_MEMBERS_SQL = "DELETE FROM class_members WHERE class_id = %(id)s"

# Members must be live students of the same school; the count tells the
# caller whether every id named one.
ADD_MEMBERS_SQL = """
INSERT INTO class_members (class_id, student_id, display, member_type)
SELECT %(id)s, s.id, m.display, m.member_type
  FROM unnest(%(member_ids)s::uuid[], %(displays)s::text[], %(types)s::text[])
       AS m (student_id, display, member_type)
  JOIN students s ON s.id = m.student_id
 WHERE s.school_code = %(school_code)s AND s.deleted_at IS NULL
ON CONFLICT DO NOTHING
"""

COUNT_LIVE_STUDENTS_SQL = """
SELECT count(*) AS n FROM students
 WHERE school_code = %(school_code)s AND deleted_at IS NULL
   AND id = ANY(%(ids)s::uuid[])
"""

MEMBERS_OF_GROUPS_SQL = """
SELECT m.class_id, s.id, m.display, m.member_type FROM class_members m
  JOIN students s ON s.id = m.student_id AND s.deleted_at IS NULL
 WHERE m.class_id = ANY(%(ids)s::uuid[])
 ORDER BY s.user_name, s.id
"""

# Listing: the WHERE and ORDER BY come from FilterSql (whitelisted columns,
# bound values); these are templates for psycopg2.sql, not plain statements.
LIST_TEMPLATES = {
    "User": (
        f"SELECT {STUDENT_COLUMNS}, count(*) OVER () AS total FROM students"
        " WHERE school_code = %(school_code)s AND deleted_at IS NULL AND ({where})"
        " ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s"
    ),
    "Group": (
        f"SELECT {GROUP_COLUMNS}, count(*) OVER () AS total FROM classes"
        " WHERE school_code = %(school_code)s AND deleted_at IS NULL AND ({where})"
        " ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s"
    ),
}
COUNT_TEMPLATES = {
    "User": "SELECT count(*) AS total FROM students WHERE school_code = %(school_code)s"
    " AND deleted_at IS NULL AND ({where})",
    "Group": "SELECT count(*) AS total FROM classes WHERE school_code = %(school_code)s"
    " AND deleted_at IS NULL AND ({where})",
}

# SCIM attribute -> (SQL expression, kind). Only these can be filtered or
# sorted on; anything else is an invalidFilter. Kinds: "ci" case-insensitive
# text, "exact" case-exact text, "bool", "int", "time".
_CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:user"
_CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:group"
FILTER_COLUMNS = {
    "User": {
        ("id", None): ("id::text", "exact"),
        ("externalid", None): ("external_id", "exact"),
        ("username", None): ("user_name", "ci"),
        ("displayname", None): ("display_name", "ci"),
        ("active", None): ("active", "bool"),
        ("name", "formatted"): ("formatted_name", "ci"),
        ("name", "familyname"): ("family_name", "ci"),
        ("name", "givenname"): ("given_name", "ci"),
        ("meta", "lastmodified"): ("updated_at", "time"),
        ("meta", "created"): ("created_at", "time"),
        ("studentnumber", None): ("student_number", "exact"),
        ("idtype", None): ("id_type", "ci"),
        ("grade", None): ("grade", "ci"),
        ("classname", None): ("class_name", "ci"),
        ("department", None): ("department", "ci"),
        ("enrollmentyear", None): ("enrollment_year", "int"),
        ("status", None): ("status", "ci"),
    },
    "Group": {
        ("id", None): ("id::text", "exact"),
        ("externalid", None): ("external_id", "exact"),
        ("displayname", None): ("display_name", "ci"),
        ("meta", "lastmodified"): ("updated_at", "time"),
        ("meta", "created"): ("created_at", "time"),
    },
}
_EXTENSION_ATTRIBUTES = {
    "studentnumber",
    "idtype",
    "grade",
    "classname",
    "department",
    "enrollmentyear",
    "status",
}
_SQL_OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _invalid_filter(detail):
    return InvalidRequest(
        "scim_invalid_filter", {"scimType": "invalidFilter", "scim_detail": detail}
    )


_ATTR_PATH = re.compile(
    r"^(?:(urn:[\w.:-]+):)?([A-Za-z][\w$-]*)(?:\.([A-Za-z][\w$-]*))?$"
)


def parse_attr_path(text):
    """``[urn:…:]attr[.sub]`` (a sortBy value) as an AttrPath."""
    match = _ATTR_PATH.match(text or "")
    if not match:
        raise ValueError(text)
    uri, attr, sub = match.groups()
    return AttrPath(attr=attr, sub_attr=sub, uri=uri)


def _like_escape(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class FilterSql(FilterVisitor):
    """A parsed SCIM filter -> a SQL condition over whitelisted columns with
    every value bound as a parameter (never spliced into the text)."""

    def __init__(self, kind, extension_urn):
        self.kind = kind
        self.columns = FILTER_COLUMNS[kind]
        self.extension_urn = extension_urn.lower()
        self.params = {}

    def _bind(self, value):
        name = f"f{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def column(self, attr_path):
        uri = (attr_path.uri or "").lower()
        attr = attr_path.attr.lower()
        sub = attr_path.sub_attr.lower() if attr_path.sub_attr else None
        core = _CORE_USER if self.kind == "User" else _CORE_GROUP
        if uri and uri not in (core, self.extension_urn):
            raise _invalid_filter(f"unknown schema in {attr_path}")
        if uri == self.extension_urn and attr not in _EXTENSION_ATTRIBUTES:
            raise _invalid_filter(f"{attr_path} cannot be filtered on")
        found = self.columns.get((attr, sub))
        if found is None:
            raise _invalid_filter(f"{attr_path} cannot be filtered on")
        return found

    def _value(self, kind, value, attr_path):
        if kind == "time":
            if isinstance(value, datetime):
                return value
            try:
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise _invalid_filter(f"{attr_path} needs a dateTime") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _invalid_filter(f"{attr_path} needs an integer")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise _invalid_filter(f"{attr_path} needs true or false")
            return value
        if not isinstance(value, str):
            raise _invalid_filter(f"{attr_path} needs a string")
        return value.lower() if kind == "ci" else value

    def visit_comparison(self, node):
        expression, kind = self.column(node.attr_path)
        op = node.op.value
        if kind == "ci":
            expression = f"lower({expression})"
        if node.value is None:
            if op == "eq":
                return f"({expression} IS NULL)"
            if op == "ne":
                return f"({expression} IS NOT NULL)"
            raise _invalid_filter(f"{op} null is meaningless")
        value = self._value(kind, node.value, node.attr_path)
        if op in ("co", "sw", "ew"):
            if kind not in ("ci", "exact"):
                raise _invalid_filter(f"{op} applies to strings only")
            pattern = _like_escape(value)
            pattern = {"co": f"%{pattern}%", "sw": f"{pattern}%", "ew": f"%{pattern}"}[
                op
            ]
            return f"({expression} LIKE {self._bind(pattern)})"
        if kind == "bool" and op not in ("eq", "ne"):
            raise _invalid_filter(f"{op} does not apply to booleans")
        return f"({expression} {_SQL_OPERATORS[op]} {self._bind(value)})"

    def visit_present(self, node):
        expression, kind = self.column(node.attr_path)
        if kind in ("ci", "exact"):
            return f"({expression} IS NOT NULL AND {expression} <> '')"
        return f"({expression} IS NOT NULL)"

    def visit_not(self, node):
        return f"(NOT COALESCE({self.visit(node.expr)}, false))"

    def visit_logical_expr(self, node):
        joiner = " AND " if node.op.value == "and" else " OR "
        return "(" + joiner.join(self.visit(term) for term in node.terms) + ")"

    def visit_value_path(self, node):
        # members[value eq "…"] on Groups is the one multi-valued attribute
        # worth filtering on: which classes hold this student.
        if self.kind != "Group" or node.attr_path.attr.lower() != "members":
            raise _invalid_filter(f"{node.attr_path} cannot be filtered on")
        inner = node.val_filter
        if not (
            hasattr(inner, "attr_path")
            and inner.attr_path.attr.lower() == "value"
            and getattr(inner, "op", None) is not None
            and inner.op.value == "eq"
        ):
            raise _invalid_filter('only members[value eq "…"] is supported')
        return (
            "(EXISTS (SELECT 1 FROM class_members m WHERE m.class_id = classes.id"
            f" AND m.student_id::text = {self._bind(str(inner.value))}))"
        )

    def order_by(self, sort_by, descending):
        if not sort_by:
            return "created_at, id"
        try:
            attr_path = parse_attr_path(sort_by)
        except ValueError:
            raise InvalidRequest(
                "scim_invalid_sort",
                {"scimType": "invalidValue", "scim_detail": sort_by},
            ) from None
        expression, kind = self.column(attr_path)
        if kind == "ci":
            expression = f"lower({expression})"
        direction = "DESC" if descending else "ASC"
        return f"{expression} {direction} NULLS LAST, id"


# -- registry verification ----------------------------------------------------------
SCHOOL_HAS_ROSTER_SQL = """
SELECT EXISTS (SELECT 1 FROM students WHERE school_code = %(school_code)s) AS synced
"""

RECORD_BY_NUMBER_SQL = """
SELECT s.id, s.name_key, s.grade, s.class_name, s.id_hash, s.active, s.status,
       ARRAY(SELECT c.display_name FROM class_members m
               JOIN classes c ON c.id = m.class_id AND c.deleted_at IS NULL
              WHERE m.student_id = s.id ORDER BY c.display_name) AS group_names
  FROM students s
 WHERE s.school_code = %(school_code)s AND s.student_number = %(student_number)s
   AND s.deleted_at IS NULL
"""

CLAIMED_BY_OTHER_SQL = """
SELECT account_id FROM verifications
 WHERE school_code = %(school_code)s AND student_number = %(student_number)s
   AND status = 'passed' AND account_id <> %(account_id)s
"""

VERIFICATION_COLUMNS = """account_id, school_code, student_number, status, code, mismatches,
submission, student_id, class_name, linked_by, link_reason, correction_note,
verified_since, submitted_at, updated_at"""

VERIFICATION_SQL = f"""
SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE account_id = %(account_id)s
"""

LOCK_VERIFICATION_SQL = f"""
SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE account_id = %(account_id)s
   FOR UPDATE
"""

# A new submission starts from scratch: a manual link or a correction note
# belonged to the data the student just replaced.
SAVE_SUBMISSION_SQL = f"""
INSERT INTO verifications (account_id, school_code, student_number, status,
                           submission, submitted_at, updated_at)
VALUES (%(account_id)s, %(school_code)s, %(student_number)s, 'pending',
        %(submission)s, %(now)s, %(now)s)
ON CONFLICT (account_id) DO UPDATE
   SET school_code = EXCLUDED.school_code, student_number = EXCLUDED.student_number,
       status = 'pending', code = NULL, mismatches = '[]'::jsonb,
       submission = EXCLUDED.submission, student_id = NULL, class_name = NULL,
       linked_by = NULL, link_reason = NULL, correction_note = NULL,
       verified_since = NULL, submitted_at = EXCLUDED.submitted_at,
       updated_at = EXCLUDED.updated_at
RETURNING {VERIFICATION_COLUMNS}
"""

# verified_since survives re-checks that keep an account passed.
SET_OUTCOME_SQL = f"""
UPDATE verifications
   SET status = %(status)s, code = %(code)s, mismatches = %(mismatches)s,
       student_id = %(student_id)s, class_name = %(class_name)s,
       verified_since = CASE WHEN %(status)s <> 'passed' THEN NULL
                             WHEN status = 'passed' AND verified_since IS NOT NULL
                             THEN verified_since
                             ELSE %(now)s END,
       updated_at = %(now)s
 WHERE account_id = %(account_id)s
RETURNING {VERIFICATION_COLUMNS}
"""

INSERT_LINKED_SQL = """
INSERT INTO verifications (account_id, school_code, student_number, status,
                           submission, linked_by, link_reason, submitted_at, updated_at)
VALUES (%(account_id)s, %(school_code)s, %(student_number)s, 'pending',
        %(submission)s, %(actor)s, %(reason)s, %(now)s, %(now)s)
ON CONFLICT (account_id) DO UPDATE
   SET school_code = EXCLUDED.school_code, student_number = EXCLUDED.student_number,
       linked_by = EXCLUDED.linked_by, link_reason = EXCLUDED.link_reason,
       updated_at = EXCLUDED.updated_at
"""

VERIFICATIONS_OF_NUMBERS_SQL = f"""
SELECT {VERIFICATION_COLUMNS} FROM verifications
 WHERE school_code = %(school_code)s AND student_number = ANY(%(numbers)s::text[])
   AND (code IS NULL OR code <> ALL(%(not_rechecked)s::text[]))
 ORDER BY account_id
   FOR UPDATE
"""

SET_CORRECTION_NOTE_SQL = f"""
UPDATE verifications SET correction_note = %(note)s, updated_at = %(now)s
 WHERE account_id = %(account_id)s AND status = 'failed'
RETURNING {VERIFICATION_COLUMNS}
"""

RESET_VERIFICATION_SQL = f"""
UPDATE verifications SET status = 'pending', code = 'resubmission_needed',
       mismatches = '[]'::jsonb, verified_since = NULL, updated_at = %(now)s
 WHERE account_id = %(account_id)s
RETURNING {VERIFICATION_COLUMNS}
"""

UNMATCHED_SQL = """
SELECT account_id, student_number, status, code, mismatches, correction_note,
       linked_by, submitted_at, updated_at, count(*) OVER () AS total
  FROM verifications
 WHERE school_code = %(school_code)s AND status <> 'passed'
   AND (%(status)s::text IS NULL OR status = %(status)s::text)
 ORDER BY updated_at DESC, account_id
 LIMIT %(limit)s OFFSET %(offset)s
"""

CLASSMATE_ROWS_SQL = """
SELECT account_id, school_code, student_number, status, class_name, student_id,
       verified_since
  FROM verifications WHERE account_id = ANY(%(ids)s::uuid[])
"""


# -- OneRoster imports ----------------------------------------------------------------
# The worker's statements. Those naming the session's TEMP staging tables end
# in _STAGE rather than _SQL: they cannot be PREPAREd against the migrated
# schema alone (tests/integration/test_db.py prepares every *_SQL).
INSERT_IMPORT_SQL = """
INSERT INTO imports (id, school_code, status, package, created_at)
VALUES (%(id)s, %(school_code)s, 'queued', %(package)s, %(now)s)
"""

IMPORT_SQL = """
SELECT id, school_code, status, version, error_code, error_detail, progress, warnings,
       attempts, created_at, started_at, finished_at
  FROM imports WHERE id = %(id)s AND school_code = %(school_code)s
"""

IMPORT_ERRORS_SQL = """
SELECT file, line, field, reason, kept FROM import_errors
 WHERE import_id = %(id)s ORDER BY file, line, field LIMIT %(limit)s
"""

COUNT_IMPORT_ERRORS_SQL = (
    "SELECT count(*) AS n FROM import_errors WHERE import_id = %(id)s"
)

# A worker that stopped beating (killed, machine lost) gets its import back
# in the queue; its transaction died with it.
REQUEUE_STALE_IMPORTS_SQL = """
UPDATE imports SET status = 'queued'
 WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => %(stale)s)
RETURNING id
"""

# One running import per school: the oldest queued import of a school with
# none running (the worker's advisory lock settles a race between instances).
CLAIM_IMPORT_SQL = """
UPDATE imports SET status = 'running', attempts = attempts + 1,
       started_at = now(), heartbeat_at = now()
 WHERE id = (SELECT i.id FROM imports i
              WHERE i.status = 'queued'
                AND NOT EXISTS (SELECT 1 FROM imports r
                                 WHERE r.school_code = i.school_code
                                   AND r.status = 'running')
              ORDER BY i.created_at
                FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id, school_code
"""

WORKER_LOAD_IMPORT_SQL = """
SELECT id, school_code, package, started_at FROM imports
 WHERE id = %(id)s AND status = 'running'
"""

HEARTBEAT_SQL = """
UPDATE imports SET heartbeat_at = now(), progress = %(progress)s WHERE id = %(id)s
"""

FAIL_IMPORT_SQL = """
UPDATE imports SET status = 'failed', error_code = %(code)s, error_detail = %(detail)s,
       package = NULL, finished_at = now(), heartbeat_at = now()
 WHERE id = %(id)s
"""

FINISH_IMPORT_SQL = """
UPDATE imports SET status = 'succeeded', version = %(version)s, progress = %(progress)s,
       warnings = %(warnings)s, package = NULL, finished_at = now(), heartbeat_at = now()
 WHERE id = %(id)s
"""

IMPORT_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('import:' || %(school_code)s))"

# Every sourcedId each file of the import names (good rows or not): a row
# named twice is refused by the reader, and a bulk file deactivates what it
# does not name — kept here, not in the worker's memory.
STAGE_FILE_IDS_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS stage_file_ids (
    entity text NOT NULL, sourced_id text NOT NULL,
    PRIMARY KEY (entity, sourced_id)
) ON COMMIT DROP
"""

CLAIM_FILE_IDS_STAGE = """
INSERT INTO stage_file_ids (entity, sourced_id)
SELECT %(entity)s, unnest(%(ids)s::text[])
ON CONFLICT DO NOTHING
RETURNING sourced_id
"""

STAGE_STUDENTS_STAGE = """
CREATE TEMP TABLE stage_students (
    line integer, id uuid, user_name text, external_id text, student_number text,
    family_name text, given_name text, formatted_name text, name_key text,
    active boolean, status text, id_type text, id_sealed bytea, id_hash text,
    id_hint text, id_problem text, grade text, class_name text, department text,
    enrollment_year integer, doc jsonb, source_modified_at timestamptz
) ON COMMIT DROP
"""
STAGE_STUDENT_COLUMNS = (
    "line",
    "id",
    "user_name",
    "external_id",
    "student_number",
    "family_name",
    "given_name",
    "formatted_name",
    "name_key",
    "active",
    "status",
    "id_type",
    "id_sealed",
    "id_hash",
    "id_hint",
    "id_problem",
    "grade",
    "class_name",
    "department",
    "enrollment_year",
    "doc",
    "source_modified_at",
)

# Rows naming a student number or user name twice in the file: the first wins.
DUPLICATES_IN_FILE_STAGE = """
DELETE FROM stage_students s USING (
    SELECT line, row_number() OVER (PARTITION BY student_number ORDER BY line) AS n,
           row_number() OVER (PARTITION BY lower(user_name) ORDER BY line) AS m
      FROM stage_students) d
 WHERE s.line = d.line AND (d.n > 1 OR d.m > 1)
RETURNING s.line
"""

# Rows whose number or user name belongs to another live record of the school.
TAKEN_BY_OTHERS_STAGE = """
DELETE FROM stage_students s USING students t
 WHERE t.school_code = %(school_code)s AND t.deleted_at IS NULL
   AND t.external_id IS DISTINCT FROM s.external_id
   AND (t.student_number = s.student_number OR lower(t.user_name) = lower(s.user_name))
RETURNING s.line, t.student_number = s.student_number AS number_taken
"""

UPSERT_STUDENTS_STAGE = """
INSERT INTO students (id, school_code, user_name, external_id, student_number,
    family_name, given_name, formatted_name, name_key, active, status, id_type,
    id_sealed, id_hash, id_hint, id_problem, grade, class_name, department,
    enrollment_year, doc, source, source_modified_at, created_at, updated_at)
SELECT id, %(school_code)s, user_name, external_id, student_number, family_name,
       given_name, formatted_name, name_key, active, status, id_type, id_sealed,
       id_hash, id_hint, id_problem, grade, class_name, department, enrollment_year,
       doc, 'oneroster', source_modified_at, %(now)s, %(now)s
  FROM stage_students
ON CONFLICT (school_code, external_id) WHERE deleted_at IS NULL AND external_id IS NOT NULL
DO UPDATE SET user_name = EXCLUDED.user_name, student_number = EXCLUDED.student_number,
    family_name = EXCLUDED.family_name, given_name = EXCLUDED.given_name,
    formatted_name = EXCLUDED.formatted_name, name_key = EXCLUDED.name_key,
    active = EXCLUDED.active, status = EXCLUDED.status, id_type = EXCLUDED.id_type,
    id_sealed = EXCLUDED.id_sealed, id_hash = EXCLUDED.id_hash,
    id_hint = EXCLUDED.id_hint, id_problem = EXCLUDED.id_problem,
    grade = EXCLUDED.grade, class_name = EXCLUDED.class_name,
    department = EXCLUDED.department, enrollment_year = EXCLUDED.enrollment_year,
    doc = EXCLUDED.doc, source = 'oneroster',
    source_modified_at = EXCLUDED.source_modified_at,
    version = students.version + 1, updated_at = EXCLUDED.updated_at
 WHERE students.source_modified_at IS NULL OR EXCLUDED.source_modified_at IS NULL
    OR EXCLUDED.source_modified_at >= students.source_modified_at
"""

# Bulk: the school's OneRoster students the file no longer names become
# inactive (never deleted: their history and verifications stay explainable).
DEACTIVATE_MISSING_STUDENTS_STAGE = """
UPDATE students SET active = false, version = version + 1, updated_at = %(now)s
 WHERE school_code = %(school_code)s AND source = 'oneroster' AND deleted_at IS NULL
   AND active AND NOT EXISTS (SELECT 1 FROM stage_file_ids f
                    WHERE f.entity = 'users' AND f.sourced_id = external_id)
"""

UPSERT_TERM_SQL = """
INSERT INTO terms (school_code, sourced_id, title, type, start_date, end_date, active,
                   source_modified_at)
VALUES (%(school_code)s, %(sourced_id)s, %(title)s, %(type)s, %(start)s, %(end)s,
        %(active)s, %(modified)s)
ON CONFLICT (school_code, sourced_id) DO UPDATE
   SET title = EXCLUDED.title, type = EXCLUDED.type, start_date = EXCLUDED.start_date,
       end_date = EXCLUDED.end_date, active = EXCLUDED.active,
       source_modified_at = EXCLUDED.source_modified_at
 WHERE terms.source_modified_at IS NULL OR EXCLUDED.source_modified_at IS NULL
    OR EXCLUDED.source_modified_at >= terms.source_modified_at
"""

DEACTIVATE_MISSING_TERMS_STAGE = """
UPDATE terms SET active = false
 WHERE school_code = %(school_code)s AND NOT EXISTS (SELECT 1 FROM stage_file_ids f
                    WHERE f.entity = 'academicSessions' AND f.sourced_id = sourced_id)
"""

UPSERT_CLASS_SQL = """
INSERT INTO classes (id, school_code, display_name, external_id, doc, source,
                     class_type, course_id, term_ids, source_modified_at, created_at,
                     updated_at, deleted_at)
VALUES (%(id)s, %(school_code)s, %(title)s, %(sourced_id)s, %(doc)s, 'oneroster',
        %(class_type)s, %(course_id)s, %(term_ids)s, %(modified)s, %(now)s, %(now)s,
        %(deleted_at)s)
ON CONFLICT (school_code, external_id) WHERE deleted_at IS NULL AND external_id IS NOT NULL
DO UPDATE SET display_name = EXCLUDED.display_name, doc = EXCLUDED.doc,
    class_type = EXCLUDED.class_type, course_id = EXCLUDED.course_id,
    term_ids = EXCLUDED.term_ids, source_modified_at = EXCLUDED.source_modified_at,
    deleted_at = EXCLUDED.deleted_at, version = classes.version + 1,
    updated_at = EXCLUDED.updated_at
 WHERE classes.source_modified_at IS NULL OR EXCLUDED.source_modified_at IS NULL
    OR EXCLUDED.source_modified_at >= classes.source_modified_at
"""

DELETE_MISSING_CLASSES_STAGE = """
UPDATE classes SET deleted_at = %(now)s, version = version + 1, updated_at = %(now)s
 WHERE school_code = %(school_code)s AND source = 'oneroster' AND deleted_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM stage_file_ids f
                    WHERE f.entity = 'classes' AND f.sourced_id = external_id)
"""

# The live classes and students one chunk of enrolments names (by their
# unique (school_code, external_id) indexes).
LIVE_IDS_OF_SQL = """
SELECT 'class' AS kind, external_id, id, class_type, course_id, term_ids,
       NULL AS student_number
  FROM classes WHERE school_code = %(school_code)s AND deleted_at IS NULL
   AND external_id = ANY(%(class_ids)s::text[])
UNION ALL
SELECT 'student', external_id, id, NULL, NULL, NULL, student_number
  FROM students WHERE school_code = %(school_code)s AND deleted_at IS NULL
   AND external_id = ANY(%(user_ids)s::text[])
"""

UPSERT_MEMBERSHIP_SQL = """
INSERT INTO class_members (class_id, student_id, source_id)
VALUES (%(class_id)s, %(student_id)s, %(source_id)s)
ON CONFLICT (class_id, student_id) DO UPDATE SET source_id = EXCLUDED.source_id
"""

DELETE_MEMBERSHIP_SQL = """
DELETE FROM class_members m USING classes c
 WHERE m.class_id = c.id AND c.school_code = %(school_code)s
   AND m.source_id = %(source_id)s
"""

DELETE_MISSING_MEMBERSHIPS_STAGE = """
DELETE FROM class_members m USING classes c
 WHERE m.class_id = c.id AND c.school_code = %(school_code)s AND c.source = 'oneroster'
   AND (m.source_id IS NULL OR NOT EXISTS (SELECT 1 FROM stage_file_ids f
                    WHERE f.entity = 'enrollments' AND f.sourced_id = m.source_id))
"""

CURRENT_TERMS_SQL = """
SELECT sourced_id FROM terms
 WHERE school_code = %(school_code)s AND active
   AND (sourced_id = (SELECT current_term FROM schools WHERE code = %(school_code)s)
        OR ((SELECT current_term FROM schools WHERE code = %(school_code)s) IS NULL
            AND type IN ('term', 'semester')
            AND start_date <= %(today)s AND end_date >= %(today)s))
"""

INSERT_IMPORT_ERROR_SQL = """
INSERT INTO import_errors (import_id, file, line, field, reason, kept)
VALUES (%(import_id)s, %(file)s, %(line)s, %(field)s, %(reason)s, %(kept)s)
"""

INSERT_WORKER_EVENT_SQL = """
INSERT INTO outbox (event_id, event_type, payload, request_id)
VALUES (%(event_id)s, %(event_type)s, %(payload)s, %(request_id)s)
"""

# After an import: verifications to re-check — every unsettled one of the
# school, and passed ones whose record the import touched.
VERIFICATIONS_AFTER_IMPORT_SQL = f"""
SELECT {VERIFICATION_COLUMNS} FROM verifications v
 WHERE v.school_code = %(school_code)s
   AND (v.code IS NULL OR v.code <> ALL(%(not_rechecked)s::text[]))
   AND (v.status <> 'passed' OR EXISTS (
        SELECT 1 FROM students s
         WHERE s.school_code = v.school_code AND s.student_number = v.student_number
           AND s.updated_at >= %(since)s))
 ORDER BY v.account_id
   FOR UPDATE
"""


# -- enrolments, change windows, the current term ---------------------------------------
# RETURNING says whether the push was newer than what is kept (no row: older
# or the same, nothing to announce).
UPSERT_ENROLLMENT_SQL = """
INSERT INTO enrollments AS e (school_code, student_number, course_id, term, kind,
    exam_ended, exam_ends_at, grades_published, makeup_pending, dropped, as_of)
VALUES (%(school_code)s, %(student_number)s, %(course_id)s, %(term)s, %(kind)s,
    %(exam_ended)s, %(exam_ends_at)s, %(grades_published)s, %(makeup_pending)s,
    %(dropped)s, %(as_of)s)
ON CONFLICT (school_code, student_number, course_id, term) DO UPDATE
   SET kind = EXCLUDED.kind, exam_ended = EXCLUDED.exam_ended,
       exam_ends_at = EXCLUDED.exam_ends_at,
       grades_published = EXCLUDED.grades_published,
       makeup_pending = EXCLUDED.makeup_pending, dropped = EXCLUDED.dropped,
       as_of = EXCLUDED.as_of
 WHERE e.as_of < EXCLUDED.as_of
RETURNING student_number
"""

UPSERT_WINDOW_SQL = """
INSERT INTO change_windows AS w (school_code, window_id, fields, starts_at, ends_at,
                                 cancelled, as_of)
VALUES (%(school_code)s, %(window_id)s, %(fields)s, %(starts_at)s, %(ends_at)s,
        %(cancelled)s, %(as_of)s)
ON CONFLICT (school_code, window_id) DO UPDATE
   SET fields = EXCLUDED.fields, starts_at = EXCLUDED.starts_at,
       ends_at = EXCLUDED.ends_at, cancelled = EXCLUDED.cancelled, as_of = EXCLUDED.as_of
 WHERE w.as_of < EXCLUDED.as_of
RETURNING window_id
"""

SET_CURRENT_TERM_SQL = """
UPDATE schools SET current_term = %(term)s WHERE code = %(school_code)s
RETURNING code
"""

SCHOOL_TERMS_SQL = """
SELECT (SELECT current_term FROM schools WHERE code = %(school_code)s) AS explicit,
       ARRAY(SELECT sourced_id FROM terms
              WHERE school_code = %(school_code)s AND active
                AND type IN ('term', 'semester')
                AND start_date <= %(today)s AND end_date >= %(today)s) AS covering,
       EXISTS (SELECT 1 FROM terms WHERE school_code = %(school_code)s) AS any_term
"""


def _not_unique(attribute):
    return Conflict(
        "scim_uniqueness",
        {"scimType": "uniqueness", "scim_detail": f"{attribute} is already taken"},
    )


class RegistryStore(Store):
    """Schools, roster records, enrolments, change windows, verifications."""

    constraint_errors = {
        "schools_pkey": lambda: Conflict("school_exists"),
        "students_user_name": lambda: _not_unique("userName"),
        "students_number": lambda: _not_unique("studentNumber"),
        "students_external_id": lambda: _not_unique("externalId"),
        "classes_external_id": lambda: _not_unique("externalId"),
        "verifications_one_account_per_record": lambda: Conflict("record_claimed"),
    }

    def insert_school(self, code, name, region, token_hash, now):
        self.execute(
            INSERT_SCHOOL_SQL,
            {
                "code": code,
                "name": name,
                "region": region,
                "token_hash": token_hash,
                "now": now,
            },
        )

    def rotate_token(self, code, token_hash, now):
        """True when the school exists (its old token is dead from now)."""
        cur = self.execute(
            ROTATE_TOKEN_SQL, {"code": code, "token_hash": token_hash, "now": now}
        )
        return cur.rowcount == 1

    def school(self, code):
        return self.fetchone(SCHOOL_SQL, {"code": code})

    def school_by_token(self, token_hash):
        return self.fetchone(SCHOOL_BY_TOKEN_SQL, {"token_hash": token_hash})

    def audit(self, actor, school_code, action, at, **ids):
        """Who did what for which school, when, under which request; only
        identifiers (``domain.audit_object_ids``), never personal data."""
        self.execute(
            INSERT_AUDIT_SQL,
            {
                "actor": actor,
                "school_code": school_code,
                "action": action,
                "object_ids": json.dumps(domain.audit_object_ids(**ids)),
                "request_id": current_request_id(),
                "at": at,
            },
        )

    # -- SCIM ---------------------------------------------------------------
    def insert_student(self, record):
        return self.fetchone(INSERT_STUDENT_SQL, {**record, "doc": Json(record["doc"])})

    def student(self, school_code, student_id):
        return self.fetchone(
            STUDENT_SQL, {"school_code": school_code, "id": student_id}
        )

    def update_student(self, record):
        """The updated row, or None when the version moved (a lost race or
        a stale If-Match)."""
        return self.fetchone(UPDATE_STUDENT_SQL, {**record, "doc": Json(record["doc"])})

    def delete_student(self, school_code, student_id, version, now):
        params = {"school_code": school_code, "id": student_id, "version": version}
        found = self.fetchone(DELETE_STUDENT_SQL, {**params, "now": now})
        if found:
            self.execute(DROP_MEMBERSHIPS_SQL, {"id": student_id})
        return found is not None

    def groups_of_students(self, student_ids):
        """{student id: [(class id, display name)]}"""
        found = {student_id: [] for student_id in student_ids}
        for row in self.fetchall(GROUPS_OF_STUDENTS_SQL, {"ids": list(student_ids)}):
            found.setdefault(row["student_id"], []).append(
                (row["id"], row["display_name"])
            )
        return found

    def insert_group(self, record):
        return self.fetchone(INSERT_GROUP_SQL, {**record, "doc": Json(record["doc"])})

    def group(self, school_code, group_id):
        return self.fetchone(GROUP_SQL, {"school_code": school_code, "id": group_id})

    def update_group(self, record):
        return self.fetchone(UPDATE_GROUP_SQL, {**record, "doc": Json(record["doc"])})

    def delete_group(self, school_code, group_id, version, now):
        params = {"school_code": school_code, "id": group_id, "version": version}
        return self.fetchone(DELETE_GROUP_SQL, {**params, "now": now}) is not None

    def count_live_students(self, school_code, ids):
        row = self.fetchone(
            COUNT_LIVE_STUDENTS_SQL, {"school_code": school_code, "ids": list(ids)}
        )
        return row["n"]

    def set_members(self, school_code, group_id, members):
        """``members``: ``[(student id, display, type)]``, replacing the set."""
        self.execute(CLEAR_MEMBERS_SQL, {"id": group_id})
        if members:
            self.execute(
                ADD_MEMBERS_SQL,
                {
                    "id": group_id,
                    "school_code": school_code,
                    "member_ids": [member[0] for member in members],
                    "displays": [member[1] for member in members],
                    "types": [member[2] for member in members],
                },
            )

    def members_of_groups(self, group_ids):
        """{class id: [(student id, display, type)]}"""
        found = {group_id: [] for group_id in group_ids}
        for row in self.fetchall(MEMBERS_OF_GROUPS_SQL, {"ids": list(group_ids)}):
            found.setdefault(row["class_id"], []).append(
                (row["id"], row["display"], row["member_type"])
            )
        return found

    def list_resources(self, kind, school_code, where, params, order, limit, offset):
        """(rows, total) of one page; ``where``/``order`` come from FilterSql."""
        values = {**params, "school_code": school_code}
        if limit == 0:  # RFC 7644 §3.4.2.4: count=0 asks for the total only
            sql = COUNT_TEMPLATES[kind].format(where=where)
            return [], self.fetchone(sql, values)["total"]
        sql = LIST_TEMPLATES[kind].format(where=where, order=order)
        rows = self.fetchall(sql, {**values, "limit": limit, "offset": offset})
        if rows:
            return rows, rows[0]["total"]
        if offset:
            return [], self.fetchone(COUNT_TEMPLATES[kind].format(where=where), values)[
                "total"
            ]
        return [], 0

    # -- registry verification ------------------------------------------------
    def school_has_roster(self, school_code):
        return self.fetchone(SCHOOL_HAS_ROSTER_SQL, {"school_code": school_code})[
            "synced"
        ]

    def record_by_number(self, school_code, student_number):
        """The live registry record for matching, its class names gathered
        from the class_name column and the classes it belongs to."""
        row = self.fetchone(
            RECORD_BY_NUMBER_SQL,
            {"school_code": school_code, "student_number": student_number},
        )
        if row is None:
            return None
        return {**row, "class_names": [row["class_name"], *row["group_names"]]}

    def claimed_by_other(self, school_code, student_number, account_id):
        return (
            self.fetchone(
                CLAIMED_BY_OTHER_SQL,
                {
                    "school_code": school_code,
                    "student_number": student_number,
                    "account_id": account_id,
                },
            )
            is not None
        )

    def verification(self, account_id, lock=False):
        sql = LOCK_VERIFICATION_SQL if lock else VERIFICATION_SQL
        return self.fetchone(sql, {"account_id": account_id})

    def save_submission(self, account_id, school_code, student_number, sealed, now):
        return self.fetchone(
            SAVE_SUBMISSION_SQL,
            {
                "account_id": account_id,
                "school_code": school_code,
                "student_number": student_number,
                "submission": sealed,
                "now": now,
            },
        )

    def set_outcome(self, account_id, outcome, now):
        return self.fetchone(
            SET_OUTCOME_SQL,
            {
                "account_id": account_id,
                "status": outcome.status,
                "code": outcome.code,
                "mismatches": Json(list(outcome.mismatches)),
                "student_id": outcome.student_id,
                "class_name": outcome.class_name,
                "now": now,
            },
        )

    def save_link(
        self, account_id, school_code, student_number, sealed, actor, reason, now
    ):
        self.execute(
            INSERT_LINKED_SQL,
            {
                "account_id": account_id,
                "school_code": school_code,
                "student_number": student_number,
                "submission": sealed,
                "actor": actor,
                "reason": reason,
                "now": now,
            },
        )

    def verifications_of_numbers(self, school_code, numbers, not_rechecked):
        return self.fetchall(
            VERIFICATIONS_OF_NUMBERS_SQL,
            {
                "school_code": school_code,
                "numbers": list(numbers),
                "not_rechecked": list(not_rechecked),
            },
        )

    def reset_verification(self, account_id, now):
        return self.fetchone(
            RESET_VERIFICATION_SQL, {"account_id": account_id, "now": now}
        )

    def unmatched(self, school_code, status, limit, offset):
        rows = self.fetchall(
            UNMATCHED_SQL,
            {
                "school_code": school_code,
                "status": status,
                "limit": limit,
                "offset": offset,
            },
        )
        return rows, (rows[0]["total"] if rows else None)

    def classmate_rows(self, account_ids):
        rows = self.fetchall(CLASSMATE_ROWS_SQL, {"ids": list(account_ids)})
        return {str(row["account_id"]): row for row in rows}

    # -- OneRoster imports (the service's side; the worker has its own) -------
    def insert_import(self, import_id, school_code, package, now):
        self.execute(
            INSERT_IMPORT_SQL,
            {
                "id": import_id,
                "school_code": school_code,
                "package": package,
                "now": now,
            },
        )

    def import_of(self, school_code, import_id):
        return self.fetchone(IMPORT_SQL, {"id": import_id, "school_code": school_code})

    def import_errors(self, import_id, limit):
        rows = self.fetchall(IMPORT_ERRORS_SQL, {"id": import_id, "limit": limit})
        total = self.fetchone(COUNT_IMPORT_ERRORS_SQL, {"id": import_id})["n"]
        return rows, total

    def verifications_after_import(self, school_code, since, not_rechecked):
        return self.fetchall(
            VERIFICATIONS_AFTER_IMPORT_SQL,
            {
                "school_code": school_code,
                "since": since,
                "not_rechecked": list(not_rechecked),
            },
        )

    # -- enrolments, change windows, the current term -------------------------
    def upsert_enrollment(self, item):
        return self.fetchone(UPSERT_ENROLLMENT_SQL, item) is not None

    def upsert_window(self, item):
        return self.fetchone(UPSERT_WINDOW_SQL, item) is not None

    def set_current_term(self, school_code, term):
        found = self.fetchone(
            SET_CURRENT_TERM_SQL, {"school_code": school_code, "term": term}
        )
        return found is not None

    def school_terms(self, school_code, today):
        return self.fetchone(
            SCHOOL_TERMS_SQL, {"school_code": school_code, "today": today}
        )

    def set_correction_note(self, account_id, note, now):
        return self.fetchone(
            SET_CORRECTION_NOTE_SQL,
            {"account_id": account_id, "note": note, "now": now},
        )
