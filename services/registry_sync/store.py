"""All SQL of the registry_sync service."""

import json

from psycopg2.extras import Json, register_uuid

from services.common.contract.errors import Conflict
from services.common.plumbing.context import current_request_id
from services.common.plumbing.db import Prepared, Store
from services.registry_sync import domain

__all__ = ["RegistryStore"]

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

# The school a system's API token belongs to, and the audit row of what the
# system is doing, in one statement (its own transaction): the request is
# audited whether or not what follows succeeds, and costs one round trip.
SCHOOL_CALL_SQL = """
WITH school AS (
    SELECT code, name, scim_sources FROM schools WHERE token_hash = %(token_hash)s
), audited AS (
    INSERT INTO audit_log (actor, school_code, action, object_ids, request_id, at)
    SELECT 'school:' || code, code, %(action)s, '{}', %(request_id)s, %(at)s
      FROM school
)
SELECT code, name, scim_sources FROM school
"""

SET_SCIM_SOURCES_SQL = """
UPDATE schools SET scim_sources = %(sources)s WHERE code = %(code)s
RETURNING code, scim_sources
"""

SCIM_SOURCES_SQL = "SELECT code, scim_sources FROM schools WHERE code = %(code)s"

INSERT_AUDIT_SQL = """
INSERT INTO audit_log (actor, school_code, action, object_ids, request_id, at)
VALUES (%(actor)s, %(school_code)s, %(action)s, %(object_ids)s, %(request_id)s, %(at)s)
"""


# -- SCIM: students (Users) and classes (Groups) --------------------------------
STUDENT_COLUMNS = """id, school_code, user_name, external_id, student_number, family_name,
given_name, formatted_name, display_name, name_key, active, status, id_type, id_hint,
id_problem, id_sealed, grade, class_name, department, enrollment_year, doc, source,
version, created_at, updated_at"""

INSERT_STUDENT_INTO = """
INSERT INTO students (id, school_code, user_name, external_id, student_number,
    family_name, given_name, formatted_name, display_name, name_key, active, status,
    id_type, id_sealed, id_hash, id_hint, id_problem, grade, class_name, department,
    enrollment_year, doc, source, created_at, updated_at)"""

STUDENT_VALUES = """%(id)s, %(school_code)s, %(user_name)s, %(external_id)s,
    %(student_number)s, %(family_name)s, %(given_name)s, %(formatted_name)s,
    %(display_name)s, %(name_key)s, %(active)s, %(status)s, %(id_type)s, %(id_sealed)s,
    %(id_hash)s, %(id_hint)s, %(id_problem)s, %(grade)s, %(class_name)s,
    %(department)s, %(enrollment_year)s, %(doc)s, 'scim', %(now)s, %(now)s"""

INSERT_STUDENT_SQL = f"""{INSERT_STUDENT_INTO}
VALUES ({STUDENT_VALUES})
RETURNING {STUDENT_COLUMNS}
"""

# A SCIM create in one statement: the student, the school system's audit
# row, and whether any registry verification names the student number (then,
# rarely, the verifier re-checks those in the same transaction).
CREATE_STUDENT_SQL = f"""
WITH student AS (
    {INSERT_STUDENT_SQL.strip()}
), audit AS (
    INSERT INTO audit_log (actor, school_code, action, object_ids, request_id, at)
    SELECT 'school:' || student.school_code, student.school_code, %(action)s,
           jsonb_build_object('resource_id', student.id::text), %(request_id)s, %(now)s
      FROM student
)
SELECT student.*,
       EXISTS (SELECT 1 FROM verifications v
                WHERE v.school_code = student.school_code
                  AND v.student_number = student.student_number) AS named_by_verifications
  FROM student
"""

# A SCIM create by a school system in one statement of its own, when the
# service already knows (``KnownSchools``) which school the token named and
# how that school's attributes are read: the token is checked again here and
# the school's attribute sources compared (no row when either moved: the
# caller goes the two-step way), the call and the creation are audited in
# that order, and the student is written unless a registry verification
# names its number (``named_by_verifications``; then only the call is
# written, and the caller creates the student in a transaction that also
# re-judges those verifications).
CREATE_STUDENT_AS_SCHOOL_SQL = f"""
WITH school AS (
    SELECT code FROM schools
     WHERE token_hash = %(token_hash)s AND code = %(school_code)s
       AND scim_sources IS NOT DISTINCT FROM %(sources)s::jsonb
), named AS (
    SELECT EXISTS (SELECT 1 FROM verifications v
                    WHERE v.school_code = %(school_code)s
                      AND v.student_number = %(student_number)s)
           AS named_by_verifications
), student AS (
    {INSERT_STUDENT_INTO.strip()}
    SELECT {STUDENT_VALUES}
      FROM school, named WHERE NOT named.named_by_verifications
    RETURNING {STUDENT_COLUMNS}
), audited AS (
    INSERT INTO audit_log (actor, school_code, action, object_ids, request_id, at)
    SELECT 'school:' || school.code, school.code, entry.action, entry.object_ids,
           %(request_id)s, %(now)s
      FROM school,
           (VALUES (1, %(call_action)s, '{{}}'::jsonb),
                   (2, %(action)s, jsonb_build_object('resource_id', %(id)s::text)))
           AS entry (rank, action, object_ids)
     WHERE entry.rank = 1 OR EXISTS (SELECT 1 FROM student)
     ORDER BY entry.rank
)
SELECT named.named_by_verifications, student.*
  FROM school CROSS JOIN named LEFT JOIN student ON true
"""

# Planned once per connection: its planning cost more than its execution.
CREATE_STUDENT_AS_SCHOOL = Prepared(
    "registry_create_student_as_school", CREATE_STUDENT_AS_SCHOOL_SQL
)

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

MEMBERS_OF_GROUPS_SQL = """
SELECT m.class_id, s.id, m.display, m.member_type FROM class_members m
  JOIN students s ON s.id = m.student_id AND s.deleted_at IS NULL
 WHERE m.class_id = ANY(%(ids)s::uuid[])
 ORDER BY s.user_name, s.id
"""

# Listing: the WHERE and ORDER BY come from scim_filter.FilterSql (whitelisted columns,
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
# The service's statements about imports; the runner's and the worker's are
# in import_store.py.
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

    def school_call(self, token_hash, action, at):
        """The school whose token this is (None: no school's), its call
        audited as ``action``; one statement of its own, committed."""
        return self.fetchone_alone(
            SCHOOL_CALL_SQL,
            {
                "token_hash": token_hash,
                "action": action,
                "request_id": current_request_id(),
                "at": at,
            },
        )

    def set_scim_sources(self, code, sources):
        """None when there is no such school."""
        return self.fetchone(
            SET_SCIM_SOURCES_SQL,
            {"code": code, "sources": Json(sources) if sources is not None else None},
        )

    def scim_sources(self, code):
        return self.fetchone(SCIM_SOURCES_SQL, {"code": code})

    def audit_school_system(self, school_code, action, at, /, **ids):
        """An action a school's own system took with its API token."""
        self.audit(f"school:{school_code}", school_code, action, at, **ids)

    def audit(self, actor, school_code, action, at, /, **ids):
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

    def create_student(self, record, action):
        """Insert a SCIM-created student and its audit row (``action``) in
        one statement; the row has ``named_by_verifications``."""
        return self.fetchone(
            CREATE_STUDENT_SQL,
            {
                **record,
                "doc": Json(record["doc"]),
                "action": action,
                "request_id": current_request_id(),
            },
        )

    def create_student_as_school(
        self, token_hash, sources, call_action, record, action
    ):
        """``CREATE_STUDENT_AS_SCHOOL_SQL``, its own transaction: None when the
        token or the school's sources moved (nothing written); else the row
        with ``named_by_verifications``, the student's columns None when
        that is true (only the call was written)."""
        return self.fetchone_alone(
            CREATE_STUDENT_AS_SCHOOL,
            {
                **record,
                "doc": Json(record["doc"]),
                "token_hash": token_hash,
                "sources": Json(sources) if sources is not None else None,
                "call_action": call_action,
                "action": action,
                "request_id": current_request_id(),
            },
        )

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
