"""All SQL of a OneRoster import, on the import worker's own plain psycopg2
connections (not the service's green pool: COPY needs a connection without
eventlet's wait callback, see ``import_worker``).

``conn`` holds the import's one transaction; ``progress_conn`` autocommits,
so the heartbeat and a failure show while the import runs or after it
rolled back. Statements naming the session's TEMP staging tables end in
_STAGE rather than _SQL: they cannot be PREPAREd against the migrated schema
alone (tests/integration/test_migrations.py prepares every *_SQL).
"""

import io
import json
import threading
import uuid
from datetime import datetime

import psycopg2
import psycopg2.errors
import psycopg2.extras

__all__ = ["ImportStore", "NEW_STUDENT_COLUMNS", "STAGE_STUDENT_COLUMNS", "copy_text"]

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

# The users that roles.csv (OneRoster 1.2) makes students: looked up a chunk
# of users.csv at a time, never held whole in the worker's memory.
STAGE_STUDENT_ROLES_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS stage_student_roles (
    user_id text PRIMARY KEY
) ON COMMIT DROP
"""

ADD_STUDENT_ROLES_STAGE = """
INSERT INTO stage_student_roles (user_id) SELECT unnest(%(ids)s::text[])
ON CONFLICT DO NOTHING
"""

STUDENTS_AMONG_STAGE = """
SELECT user_id FROM stage_student_roles WHERE user_id = ANY(%(ids)s::text[])
"""

STAGE_STUDENTS_STAGE = """
CREATE TEMP TABLE stage_students (
    line integer, id uuid DEFAULT gen_random_uuid(), user_name text, external_id text, student_number text,
    family_name text, given_name text, formatted_name text, name_key text,
    active boolean, status text, id_type text, id_sealed bytea, id_hash text,
    id_hint text, id_problem text, grade text, class_name text, department text,
    enrollment_year integer, doc jsonb, source_modified_at timestamptz
) ON COMMIT DROP
"""

# The id of a new student is made by PostgreSQL (the stage's default), not
# by a uuid4() per row in the worker.
STAGE_STUDENT_COLUMNS = (
    "line",
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

# A school's first roster goes straight into students (no staging table, no
# merge): the staged columns but the line, behind the values the upsert
# would write for every row of the import (``new_student_lead``).
NEW_STUDENT_COLUMNS = (
    "school_code",
    "source",
    "created_at",
    "updated_at",
    *STAGE_STUDENT_COLUMNS[1:],
)

# Whether the school has no live student record, whatever its source: then
# nothing can clash with the file but the file itself, and its unique
# indexes catch that. Read under the import's lock; a SCIM create racing
# the import either waits on the COPY's index entries or fails it.
HAS_LIVE_STUDENTS_SQL = """
SELECT EXISTS (SELECT 1 FROM students
                WHERE school_code = %(school_code)s AND deleted_at IS NULL) AS any
"""

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

# Around a first roster's COPY into students: a unique index refusing a row
# undoes the attempt, the staging table's claims included (not PREPAREd, so
# not _SQL).
FIRST_ROSTER_SAVEPOINT = "SAVEPOINT first_roster"
FIRST_ROSTER_UNDO = "ROLLBACK TO SAVEPOINT first_roster"
FIRST_ROSTER_KEPT = "RELEASE SAVEPOINT first_roster"

HAS_TERMS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM terms WHERE school_code = %(school_code)s) AS any"
)


def _escaped(text):
    # str.replace hands back the same string when there is nothing to replace.
    return (
        text.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def _copy_value(value):
    """One field of COPY's text format. Text first: most fields are text,
    and this runs once per field of every staged row."""
    if value.__class__ is str:
        return _escaped(value)
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\\\x" + bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return _escaped(value if isinstance(value, str) else str(value))


def copy_text(rows, lead=""):
    """``rows`` (tuples) in COPY's text format, each line starting with
    ``lead`` (fields already encoded, tab-ended); pure, so the import's pool
    workers encode their chunks themselves."""
    return "".join(lead + "\t".join(map(_copy_value, row)) + "\n" for row in rows)


def copy_rows(cursor, table, columns, rows):
    """COPY ``rows`` (tuples in ``columns`` order) into ``table``."""
    copy_encoded(cursor, table, columns, copy_text(rows))


def copy_encoded(cursor, table, columns, text):
    """COPY rows already in COPY's text format into ``table``."""
    cursor.copy_expert(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO(text)
    )


class ImportStore:
    """One import's statements, for the school ``school_code``."""

    def __init__(self, conn, progress_conn):
        self.conn = conn
        self.progress_conn = progress_conn
        self.school_code = None
        # The worker COPYs each chunk on a thread of its own while it reads
        # on (``_CopiesBehind``), claiming the next rows' sourcedIds and
        # looking up their roles: all share the import's transaction, and
        # psycopg2 does not keep a COPY in progress from another thread's
        # statement, so the calls that can overlap take turns here.
        # Everything else runs only once the COPYs are drained.
        self._turns = threading.Lock()

    @classmethod
    def connect(cls, dsn):
        conn = psycopg2.connect(dsn)
        progress_conn = psycopg2.connect(dsn)
        progress_conn.autocommit = True
        return cls(conn, progress_conn)

    @classmethod
    def for_runner(cls, dsn):
        """The service's import runner: one autocommitted connection."""
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        return cls(conn, conn)

    def requeue_stale(self, stale_seconds):
        """Imports whose worker stopped beating go back to the queue."""
        return [
            row["id"]
            for row in self._rows(REQUEUE_STALE_IMPORTS_SQL, {"stale": stale_seconds})
        ]

    def claim_next(self):
        """The next queued import of a school with none running, or None."""
        rows = self._rows(CLAIM_IMPORT_SQL)
        return str(rows[0]["id"]) if rows else None

    def close(self):
        self.conn.close()
        if self.progress_conn is not self.conn:
            self.progress_conn.close()

    def _cursor(self):
        return self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)

    def _run(self, sql, params=None):
        with self._cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def _rows(self, sql, params=None):
        with self._cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def commit(self):
        self.conn.commit()

    def rollback(self):
        self.conn.rollback()

    # -- the import's own row (progress connection: visible at once) ----------
    def load_import(self, import_id):
        """The running import claimed for this worker, or None."""
        rows = self._rows(WORKER_LOAD_IMPORT_SQL, {"id": import_id})
        self.conn.rollback()
        row = rows[0] if rows else None
        if row is not None:
            self.school_code = row["school_code"]
        return row

    def heartbeat(self, import_id, progress):
        with self.progress_conn.cursor() as cur:
            cur.execute(
                HEARTBEAT_SQL, {"id": import_id, "progress": json.dumps(progress)}
            )

    def fail(self, import_id, code, detail):
        with self.progress_conn.cursor() as cur:
            cur.execute(
                FAIL_IMPORT_SQL, {"id": import_id, "code": code, "detail": detail}
            )

    # -- the import's transaction ------------------------------------------------
    def stage_file_ids(self):
        self._run(STAGE_FILE_IDS_STAGE)

    def claim_file_ids(self, entity, ids):
        """Which of ``ids`` (distinct) no earlier row of ``entity`` named."""
        with self._turns, self.conn.cursor() as cur:
            cur.execute(CLAIM_FILE_IDS_STAGE, {"entity": entity, "ids": list(ids)})
            return {row[0] for row in cur.fetchall()}

    def stage_student_roles(self):
        self._run(STAGE_STUDENT_ROLES_STAGE)

    def add_student_roles(self, user_ids):
        self._run(ADD_STUDENT_ROLES_STAGE, {"ids": user_ids})

    def students_among(self, user_ids):
        """Which of ``user_ids`` roles.csv made students."""
        with self._turns, self.conn.cursor() as cur:
            cur.execute(STUDENTS_AMONG_STAGE, {"ids": user_ids})
            return {row[0] for row in cur.fetchall()}

    def lock_school(self):
        """Two imports of one school never interleave (until commit)."""
        self._run(IMPORT_LOCK_SQL, {"school_code": self.school_code})

    def upsert_term(self, row):
        self._run(
            UPSERT_TERM_SQL,
            {
                **row,
                "school_code": self.school_code,
                "active": row["status"] == "active",
            },
        )

    def deactivate_missing_terms(self):
        self._run(DEACTIVATE_MISSING_TERMS_STAGE, {"school_code": self.school_code})

    def upsert_class(self, row, doc, deleted_at, now):
        self._run(
            UPSERT_CLASS_SQL,
            {
                **row,
                "id": uuid.uuid4(),
                "school_code": self.school_code,
                "doc": json.dumps(doc, ensure_ascii=False),
                "deleted_at": deleted_at,
                "now": now,
            },
        )

    def delete_missing_classes(self, now):
        self._run(
            DELETE_MISSING_CLASSES_STAGE, {"school_code": self.school_code, "now": now}
        )

    def stage_students(self):
        self._run(STAGE_STUDENTS_STAGE)

    def copy_students(self, encoded):
        """Stages students given in COPY's text format (``copy_text``)."""
        with self._turns, self.conn.cursor() as cur:
            copy_encoded(cur, "stage_students", STAGE_STUDENT_COLUMNS, encoded)

    def has_live_students(self):
        rows = self._rows(HAS_LIVE_STUDENTS_SQL, {"school_code": self.school_code})
        return rows[0]["any"]

    def new_student_lead(self, now):
        """What every line of ``copy_new_students`` starts with: the values
        the first NEW_STUDENT_COLUMNS take for each record of the import."""
        return "".join(
            _copy_value(value) + "\t"
            for value in (self.school_code, "oneroster", now, now)
        )

    def begin_first_roster(self):
        self._run(FIRST_ROSTER_SAVEPOINT)

    def copy_new_students(self, encoded):
        """COPY new records (NEW_STUDENT_COLUMNS, ``copy_text``) straight
        into students. False, with all since ``begin_first_roster``
        undone, when a unique index refuses one."""
        with self._turns:
            try:
                with self.conn.cursor() as cur:
                    copy_encoded(cur, "students", NEW_STUDENT_COLUMNS, encoded)
            except psycopg2.errors.UniqueViolation:
                # At once, before the reader's next claim: it would fail
                # on the aborted transaction.
                self._run(FIRST_ROSTER_UNDO)
                return False
        return True

    def undo_first_roster(self):
        """All since ``begin_first_roster`` undone (again: what ran after
        a refused COPY, before the worker saw the refusal)."""
        self._run(FIRST_ROSTER_UNDO)

    def keep_first_roster(self):
        self._run(FIRST_ROSTER_KEPT)

    def duplicates_in_file(self):
        return self._rows(DUPLICATES_IN_FILE_STAGE)

    def taken_by_others(self):
        return self._rows(TAKEN_BY_OTHERS_STAGE, {"school_code": self.school_code})

    def upsert_students(self, now):
        self._run(UPSERT_STUDENTS_STAGE, {"school_code": self.school_code, "now": now})

    def deactivate_missing_students(self, now):
        """How many of the school's students the file no longer names."""
        return self._run(
            DEACTIVATE_MISSING_STUDENTS_STAGE,
            {"school_code": self.school_code, "now": now},
        )

    def live_targets(self, class_ids, user_ids):
        return self._rows(
            LIVE_IDS_OF_SQL,
            {
                "school_code": self.school_code,
                "class_ids": class_ids,
                "user_ids": user_ids,
            },
        )

    def delete_membership(self, source_id):
        self._run(
            DELETE_MEMBERSHIP_SQL,
            {"school_code": self.school_code, "source_id": source_id},
        )

    def upsert_membership(self, class_id, student_id, source_id):
        self._run(
            UPSERT_MEMBERSHIP_SQL,
            {"class_id": class_id, "student_id": student_id, "source_id": source_id},
        )

    def delete_missing_memberships(self):
        self._run(DELETE_MISSING_MEMBERSHIPS_STAGE, {"school_code": self.school_code})

    def current_terms(self, today):
        rows = self._rows(
            CURRENT_TERMS_SQL, {"school_code": self.school_code, "today": today}
        )
        return {row["sourced_id"] for row in rows}

    def has_terms(self):
        return self._rows(HAS_TERMS_SQL, {"school_code": self.school_code})[0]["any"]

    def add_event(self, event_type, payload, request_id):
        """In the import's transaction, like any store's outbox row."""
        self._run(
            INSERT_WORKER_EVENT_SQL,
            {
                "event_id": str(uuid.uuid4()),
                "event_type": event_type,
                "payload": json.dumps(payload, ensure_ascii=False, default=str),
                "request_id": request_id,
            },
        )

    def record_errors(self, import_id, errors):
        with self._cursor() as cur:
            psycopg2.extras.execute_batch(
                cur,
                INSERT_IMPORT_ERROR_SQL,
                [
                    {
                        "import_id": import_id,
                        "file": f"{error.file}.csv",
                        "line": error.line,
                        "field": error.field,
                        "reason": error.reason,
                        "kept": error.kept,
                    }
                    for error in errors
                ],
                page_size=1000,
            )

    def finish(self, import_id, version, progress, warnings):
        self._run(
            FINISH_IMPORT_SQL,
            {
                "id": import_id,
                "version": version,
                "progress": json.dumps(progress),
                "warnings": json.dumps(warnings, ensure_ascii=False),
            },
        )
