"""The OneRoster import worker: ``python -m services.registry_sync.import_worker
<import id>``, started by the service's ``ImportRunner`` for one claimed
import. A process of its own because PostgreSQL's COPY — the fast way in for
100k students — cannot run on the service's green psycopg2 connections (the
wait callback is process-wide), and because parsing and sealing 100k rows
would starve the service's event loop.

    claimed import ──► open zip, manifest, ──► PackageError ────────► failed (one code)
                       every header         └──► one transaction, ──► succeeded
                                                  each file streamed    (+ roster_imported
                                                  a chunk at a time:      event, which
                                                  terms, classes,         re-checks
                                                  students (COPY),        verifications)
                                                  memberships, events;
                                                  row errors reported

Memory is bounded by the chunk, not the file (a package at the size limit
peaks at ~250 MiB; the service caps the worker at IMPORT_MEMORY_LIMIT_MB).
Everything is applied in one transaction under a per-school advisory lock,
so an import is all or nothing and two imports of one school never
interleave. Config comes from the environment the runner passes:
``REGISTRY_SYNC_DB_URI``, ``REGISTRY_ID_SEAL_KEY``, ``REGISTRY_ID_LOOKUP_KEY``.
"""

import base64
import io
import json
import logging
import os
import sys
import time
import uuid
from datetime import datetime, timezone

import psycopg2
import psycopg2.extras

from services.common.plumbing.crypto import Sealer, keyed_hash
from services.common.rules.calendar import beijing_day
from services.common.rules.realname import comparable_name
from services.registry_sync import oneroster, scim
from services.registry_sync import store as sql

log = logging.getLogger("services.registry_sync.import_worker")

psycopg2.extras.register_uuid()


class Keys:
    def __init__(self, seal_key, lookup_key):
        self.sealer = Sealer(seal_key, b"registry_id_number")
        self.lookup_key = lookup_key

    def id_hash(self, number):
        return keyed_hash(self.lookup_key, "id_number", number)


def _copy_value(value):
    """One field of COPY's text format."""
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
    text = value if isinstance(value, str) else str(value)
    return (
        text.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def copy_rows(cursor, table, columns, rows):
    """COPY ``rows`` (tuples in ``columns`` order) into ``table``."""
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(_copy_value(value) for value in row))
        buffer.write("\n")
    buffer.seek(0)
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)


class Import:
    def __init__(self, conn, progress_conn, import_row, keys, now):
        self.conn = conn
        self.progress_conn = progress_conn
        self.id = import_row["id"]
        self.school_code = import_row["school_code"]
        self.started_at = import_row["started_at"]
        self.keys = keys
        self.now = now
        self.today = beijing_day(now)
        self.progress = {}
        self.errors = []
        self.warnings = []

    def cursor(self):
        return self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)

    def beat(self):
        with self.progress_conn.cursor() as cur:
            cur.execute(
                sql.HEARTBEAT_SQL,
                {"id": self.id, "progress": json.dumps(self.progress)},
            )

    def count(self, entity, **numbers):
        entry = self.progress.setdefault(
            entity, {"read": 0, "kept": 0, "refused": 0, "skipped": 0}
        )
        for key, value in numbers.items():
            entry[key] = entry.get(key, 0) + value

    def refuse(self, entity, line, field, reason):
        self.errors.append(oneroster.RowError(entity, line, field, reason))
        self.count(entity, refused=1, kept=-1)

    # -- entities ---------------------------------------------------------------
    def terms(self, parsed):
        with self.cursor() as cur:
            for row in parsed:
                cur.execute(
                    sql.UPSERT_TERM_SQL,
                    {
                        **row,
                        "school_code": self.school_code,
                        "active": row["status"] == "active",
                    },
                )
            if parsed.mode == "bulk":
                cur.execute(
                    sql.DEACTIVATE_MISSING_TERMS_STAGE,
                    {"school_code": self.school_code},
                )

    def classes(self, parsed):
        with self.cursor() as cur:
            for row in parsed:
                deleted = self.now if row["status"] == "tobedeleted" else None
                cur.execute(
                    sql.UPSERT_CLASS_SQL,
                    {
                        **row,
                        "id": uuid.uuid4(),
                        "school_code": self.school_code,
                        "doc": json.dumps(
                            {
                                "displayName": row["title"],
                                "externalId": row["sourced_id"],
                            },
                            ensure_ascii=False,
                        ),
                        "deleted_at": deleted,
                        "now": self.now,
                    },
                )
            if parsed.mode == "bulk":
                cur.execute(
                    sql.DELETE_MISSING_CLASSES_STAGE,
                    {"school_code": self.school_code, "now": self.now},
                )

    def students(self, users, student_ids):
        """Stage the student rows with COPY, a chunk at a time as the file is
        read, drop the ones that clash, upsert the rest (newest
        dateLastModified wins)."""
        with self.cursor() as cur:
            cur.execute(sql.STAGE_STUDENTS_STAGE)
            for chunk in _chunks(self._students_of(users, student_ids)):
                # Normalising, sealing and hashing each ID number, the
                # document: CPU work a chunk at a time. (A forked pool gained
                # nothing once rows came in chunks and doubled the memory:
                # every child copies the parent's pages.)
                staged, problems = _tuples_of(self, chunk)
                for problem in problems:
                    users.report(problem)
                copy_rows(cur, "stage_students", sql.STAGE_STUDENT_COLUMNS, staged)
                self.beat()
            cur.execute(sql.DUPLICATES_IN_FILE_STAGE)
            for found in cur.fetchall():
                self.refuse(
                    "users",
                    found["line"],
                    "identifier",
                    "the student number or username appears twice in the file",
                )
            cur.execute(sql.TAKEN_BY_OTHERS_STAGE, {"school_code": self.school_code})
            for found in cur.fetchall():
                self.refuse(
                    "users",
                    found["line"],
                    "identifier" if found["number_taken"] else "username",
                    "already used by another student record of this school",
                )
            cur.execute(
                sql.UPSERT_STUDENTS_STAGE,
                {"school_code": self.school_code, "now": self.now},
            )
            if users.mode == "bulk":
                cur.execute(
                    sql.DEACTIVATE_MISSING_STUDENTS_STAGE,
                    {"school_code": self.school_code, "now": self.now},
                )
                self.count("users", deactivated=cur.rowcount)

    def _students_of(self, users, student_ids):
        """The student rows of users.csv as it is read (1.1 says the role
        in a column, 1.2 in roles.csv)."""
        for row in users:
            if row["role"]:
                is_student = row["role"] == "student"
            else:
                is_student = row["sourced_id"] in student_ids
            if not is_student:
                self.count("users", skipped=1, kept=-1)
                continue
            yield row

    def _student_tuple(self, row):
        """``(tuple, row error or None)`` of one student row."""
        number = row["id_number"]
        normalised, problem, error = (None, None, None)
        if number:
            normalised, problem = scim._sealable_id(row["id_type"], number, self.today)
            if problem:
                error = oneroster.RowError(
                    "users",
                    row["line"],
                    "metadata.idNumber",
                    f"{problem} (kept; it will never match a student's ID)",
                    kept=True,
                )
                normalised = None
        formatted = row["formatted_name"]
        name = formatted or (row["family_name"] or "") + (row["given_name"] or "")
        doc = {
            "userName": row["username"] or row["student_number"],
            "externalId": row["sourced_id"],
            "name": {
                key: value
                for key, value in (
                    ("formatted", formatted),
                    ("familyName", row["family_name"]),
                    ("givenName", row["given_name"]),
                )
                if value
            },
            "active": bool(row["enabled"]) and row["status"] == "active",
            scim.STUDENT_URN: {
                key: value
                for key, value in (
                    ("studentNumber", row["student_number"]),
                    ("idType", row["id_type"]),
                    ("grade", row["grade"]),
                    ("className", row["class_name"]),
                    ("department", row["department"]),
                    ("enrollmentYear", row["enrollment_year"]),
                    ("status", row["student_status"]),
                )
                if value is not None
            },
        }
        active = bool(row["enabled"]) and row["status"] == "active"
        return (
            row["line"],
            uuid.uuid4(),
            row["username"] or row["student_number"],
            row["sourced_id"],
            row["student_number"],
            row["family_name"],
            row["given_name"],
            formatted,
            comparable_name(name),
            active,
            row["student_status"] or "active",
            row["id_type"],
            self.keys.sealer.seal(number) if number else None,
            self.keys.id_hash(normalised) if normalised else None,
            scim.id_hint(normalised or number),
            problem,
            row["grade"],
            row["class_name"],
            row["department"],
            row["enrollment_year"],
            json.dumps(doc, ensure_ascii=False),
            row["modified"],
        ), error

    def _live_targets(self, cur, chunk):
        """The live classes and students a chunk of enrolments names (looked
        up per chunk: a large school's whole roster is never in memory)."""
        cur.execute(
            sql.LIVE_IDS_OF_SQL,
            {
                "school_code": self.school_code,
                "class_ids": sorted({row["class_id"] for row in chunk}),
                "user_ids": sorted({row["user_id"] for row in chunk}),
            },
        )
        classes, students = {}, {}
        for found in cur.fetchall():
            (classes if found["kind"] == "class" else students)[
                found["external_id"]
            ] = found
        return classes, students

    def enrollments(self, parsed, current_terms, has_terms):
        with self.cursor() as cur:
            for chunk in _chunks(parsed):
                classes, students = self._live_targets(cur, chunk)
                for row in chunk:
                    self._enrollment(
                        cur, row, classes, students, current_terms, has_terms
                    )
                self.beat()
            if parsed.mode == "bulk":
                cur.execute(
                    sql.DELETE_MISSING_MEMBERSHIPS_STAGE,
                    {"school_code": self.school_code},
                )

    def _enrollment(self, cur, row, classes, students, current_terms, has_terms):
        """One enrolment row: the membership kept or dropped, its event."""
        if row["role"] != "student":
            self.count("enrollments", skipped=1, kept=-1)
            return
        klass = classes.get(row["class_id"])
        student = students.get(row["user_id"])
        if row["status"] == "tobedeleted":
            cur.execute(
                sql.DELETE_MEMBERSHIP_SQL,
                {"school_code": self.school_code, "source_id": row["sourced_id"]},
            )
            if klass and student:
                self._enrollment_event(
                    row, klass, student, current_terms, has_terms, dropped=True
                )
            return
        if klass is None:
            self.refuse(
                "enrollments",
                row["line"],
                "classSourcedId",
                "no such class of this school",
            )
            return
        if student is None:
            self.refuse(
                "enrollments",
                row["line"],
                "userSourcedId",
                "no such student of this school",
            )
            return
        cur.execute(
            sql.UPSERT_MEMBERSHIP_SQL,
            {
                "class_id": klass["id"],
                "student_id": student["id"],
                "source_id": row["sourced_id"],
            },
        )
        self._enrollment_event(row, klass, student, current_terms, has_terms)

    def _enrollment_event(
        self, row, klass, student, current_terms, has_terms, dropped=False
    ):
        """A course enrolment (a scheduled class) of the current term goes to
        identity as enrollment_changed; homerooms are classes, not courses."""
        if (klass["class_type"] or "scheduled") != "scheduled":
            return
        terms = klass["term_ids"] or []
        if has_terms and not set(terms) & current_terms:
            return
        self.event(
            "enrollment_changed",
            {
                "school_code": self.school_code,
                "student_number": student["student_number"],
                "course_id": (klass["course_id"] or row["class_id"])[:64],
                "term": (terms[0] if terms else "current")[:32],
                "kind": row["kind"],
                "exam_ended": row["exam_ended"],
                "grades_published": row["grades_published"],
                "dropped": dropped,
                "as_of": (row["modified"] or self.now).isoformat(),
            },
        )

    def event(self, event_type, payload):
        with self.conn.cursor() as cur:
            cur.execute(
                sql.INSERT_WORKER_EVENT_SQL,
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": event_type,
                    "payload": json.dumps(payload, ensure_ascii=False, default=str),
                    "request_id": f"import:{self.id}",
                },
            )

    def current_terms(self):
        with self.cursor() as cur:
            cur.execute(
                sql.CURRENT_TERMS_SQL,
                {"school_code": self.school_code, "today": self.today},
            )
            return {row["sourced_id"] for row in cur.fetchall()}

    # -- the whole import ---------------------------------------------------------
    def run(self, package):
        # Checked whole up front (zip, manifest, every announced file's
        # header); rows are read, checked and applied a chunk at a time.
        with self.cursor() as cur:
            cur.execute(sql.STAGE_FILE_IDS_STAGE)
        version, readers = oneroster.open_files(
            oneroster.open_package(package), _SeenInTable(self.conn)
        )
        self.beat()
        with self.cursor() as cur:
            cur.execute(sql.IMPORT_LOCK_SQL, {"school_code": self.school_code})
        if "academicSessions" in readers:
            self.terms(readers["academicSessions"])
        if "classes" in readers:
            self.classes(readers["classes"])
        if "users" in readers:
            student_ids = {
                row["user_id"]
                for row in readers.get("roles", ())
                if row["role"] == "student" and row["status"] != "tobedeleted"
            }
            self.students(readers["users"], student_ids)
        self.beat()
        if "enrollments" in readers:
            terms = self.current_terms()
            with self.cursor() as cur:
                cur.execute(
                    "SELECT EXISTS (SELECT 1 FROM terms WHERE school_code = %(s)s) AS any",
                    {"s": self.school_code},
                )
                has_terms = cur.fetchone()["any"]
            self.enrollments(readers["enrollments"], terms, has_terms)
        for entity, reader in readers.items():
            reader.drain()  # files no step applies (orgs, courses) are checked too
            self.count(
                entity, read=reader.read, kept=reader.kept, refused=reader.refused
            )
            self.errors.extend(reader.errors)
            self.warnings.extend(reader.warnings)
        with self.cursor() as cur:
            psycopg2.extras.execute_batch(
                cur,
                sql.INSERT_IMPORT_ERROR_SQL,
                [
                    {
                        "import_id": self.id,
                        "file": f"{error.file}.csv",
                        "line": error.line,
                        "field": error.field,
                        "reason": error.reason,
                        "kept": error.kept,
                    }
                    for error in self.errors
                ],
                page_size=1000,
            )
            self.event(
                "roster_imported",
                {
                    "school_code": self.school_code,
                    "import_id": str(self.id),
                    "since": self.started_at.isoformat(),
                },
            )
            cur.execute(
                sql.FINISH_IMPORT_SQL,
                {
                    "id": self.id,
                    "version": version,
                    "progress": json.dumps(self.progress),
                    "warnings": json.dumps(self.warnings, ensure_ascii=False),
                },
            )
        self.conn.commit()


# Rows read, checked and applied at a time: bounds the import's memory
# whatever the file's size (IMPORT_CHUNK_ROWS moves it).
CHUNK_ROWS = 10_000


def _chunks(rows, size=None):
    """Lists of at most ``size`` items of an iterable, as it is consumed."""
    size = size or int(os.environ.get("IMPORT_CHUNK_ROWS") or CHUNK_ROWS)
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _tuples_of(job, rows):
    tuples, errors = [], []
    for row in rows:
        staged, error = job._student_tuple(row)
        tuples.append(staged)
        if error is not None:
            errors.append(error)
    return tuples, errors


class _SeenInTable:
    """``oneroster.SeenIds`` kept in the import's temporary table
    ``stage_file_ids`` (one round trip per batch of rows): the ids of a
    file at the size limit stay out of the worker's memory, and the bulk
    deactivations read the same table."""

    def __init__(self, conn):
        self.conn = conn

    def claim(self, entity, ids):
        first = {}
        for index, sourced_id in enumerate(ids):
            first.setdefault(sourced_id, index)
        if not first:
            return []
        with self.conn.cursor() as cur:
            cur.execute(
                sql.CLAIM_FILE_IDS_STAGE, {"entity": entity, "ids": list(first)}
            )
            new = {row[0] for row in cur.fetchall()}
        return [
            first[sourced_id] != index or sourced_id not in new
            for index, sourced_id in enumerate(ids)
        ]


def _fail(conn, import_id, code, detail):
    with conn.cursor() as cur:
        cur.execute(
            sql.FAIL_IMPORT_SQL, {"id": import_id, "code": code, "detail": detail}
        )


def main(import_id):
    dsn = os.environ["REGISTRY_SYNC_DB_URI"]
    keys = Keys(
        base64.b64decode(os.environ["REGISTRY_ID_SEAL_KEY"]),
        base64.b64decode(os.environ["REGISTRY_ID_LOOKUP_KEY"]),
    )
    conn = psycopg2.connect(dsn)
    progress_conn = psycopg2.connect(dsn)
    progress_conn.autocommit = True
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql.WORKER_LOAD_IMPORT_SQL, {"id": import_id})
            row = cur.fetchone()
        conn.rollback()
        if row is None:
            log.warning("import %s is not running; nothing to do", import_id)
            return 0
        job = Import(conn, progress_conn, row, keys, datetime.now(timezone.utc))
        started = time.monotonic()
        try:
            job.run(bytes(row["package"]))
        except oneroster.PackageError as exc:
            conn.rollback()
            _fail(progress_conn, import_id, exc.code, exc.detail)
            log.info("import %s refused: %s", import_id, exc.code)
            return 0
        except Exception as exc:  # a bug or a lost database: nothing applied
            conn.rollback()
            log.exception("import %s crashed", import_id)
            _fail(progress_conn, import_id, "import_error", type(exc).__name__)
            return 1
        log.info(
            "import %s done in %.2f s: %s",
            import_id,
            time.monotonic() - started,
            json.dumps(job.progress),
        )
        return 0
    finally:
        conn.close()
        progress_conn.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main(sys.argv[1]))
