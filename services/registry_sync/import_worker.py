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

    students: school has a live record? ──no──► COPY straight into students
                    │ yes                            │ (savepoint)
                    │        ◄── a unique index ─────┤
                    │            refused a row:      │ all rows in
                    ▼            undone, read again  ▼
               stage (COPY), drop clashes,        kept (deactivated: 0)
               deactivate (bulk), upsert

Memory is bounded by the chunk, not the file: a package at the size limit
(1.26M students) peaks at ~175 MiB with its pool (``_staged``); no set of the
roster's ids is held (sourcedIds and 1.2's student roles are in the
import's temporary tables); the worker and its pool share the address-space
cap of IMPORT_MEMORY_LIMIT_MB.
Everything is applied in one transaction under a per-school advisory lock,
so an import is all or nothing and two imports of one school never
interleave. Config comes from the environment the runner passes:
``REGISTRY_SYNC_DB_URI``, ``REGISTRY_ID_SEAL_KEY``, ``REGISTRY_ID_LOOKUP_KEY``.
"""

import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import resource
import sys
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timezone

import psycopg2.extras

from services.common.plumbing.limits import cap_address_space
from services.common.rules.calendar import beijing_day
from services.common.rules.realname import comparable_name
from services.registry_sync import domain, oneroster
from services.registry_sync.import_store import ImportStore, copy_text
from services.registry_sync.keys import keys_from

log = logging.getLogger("services.registry_sync.import_worker")

psycopg2.extras.register_uuid()


class Import:
    """One import's steps; every statement goes through ``store``."""

    def __init__(self, store, import_row, keys, now):
        self.store = store
        self.id = import_row["id"]
        self.school_code = import_row["school_code"]
        self.started_at = import_row["started_at"]
        self.keys = keys
        self.now = now
        self.today = beijing_day(now)
        self.progress = {}
        self.errors = []
        self.warnings = []

    def beat(self):
        self.store.heartbeat(self.id, self.progress)

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
        for row in parsed:
            self.store.upsert_term(row)
        if parsed.mode == "bulk":
            self.store.deactivate_missing_terms()

    def classes(self, parsed):
        for row in parsed:
            self.store.upsert_class(
                row,
                {"displayName": row["title"], "externalId": row["sourced_id"]},
                self.now if row["status"] == "tobedeleted" else None,
                self.now,
            )
        if parsed.mode == "bulk":
            self.store.delete_missing_classes(self.now)

    def students(self, users, reread_users):
        """Apply the student rows of ``users``; the reader read to the end.

        A school's first roster (no live record of any source) is COPYd
        straight into students as it is worked: nothing can clash with it
        but itself, and the unique indexes catch that. Otherwise — or when
        they refuse a row of the first roster, which undoes it — the rows
        are staged and merged (``_merged``), the file read again from the
        top (``reread_users``)."""
        if self.store.has_live_students():
            deactivated = self._merged(users)
        elif self._first_roster(users):
            deactivated = 0  # there was nothing to deactivate
        else:  # undone by a unique index: the file again, from the top
            self.progress.pop("users", None)
            users = reread_users()
            deactivated = self._merged(users)
        if users.mode == "bulk":
            self.count("users", deactivated=deactivated)
        return users

    def _first_roster(self, users):
        """The student rows COPYd into students a chunk at a time. False
        when a unique index refuses one — the file names a student number
        or user name twice, or a SCIM create won a race for one — with
        everything since the savepoint undone, sourcedId claims included."""
        self.store.begin_first_roster()
        lead = self.store.new_student_lead(self.now)
        chunks = _chunks(self._students_of(users))
        with (
            contextlib.closing(_staged(chunks, self.keys, self.today, lead)) as worked,
            _CopiesBehind(self.store.copy_new_students) as copies,
        ):
            for encoded, problems in worked:
                for problem in problems:
                    users.report(problem)
                copies.copy(encoded)
                if copies.refused:
                    break
                self.beat()
            copies.wait()
        if copies.refused:
            # The reader's claims and the COPYs queued behind the refused
            # one ran on after it: undone too.
            self.store.undo_first_roster()
            return False
        self.store.keep_first_roster()
        return True

    def _merged(self, users):
        """Stage the student rows with COPY, a chunk at a time as the file is
        read, drop the ones that clash, deactivate (bulk) the school's
        records the file no longer names, upsert the rest (newest
        dateLastModified wins). Returns how many it deactivated."""
        self.store.stage_students()
        chunks = _chunks(self._students_of(users))
        with _CopiesBehind(self.store.copy_students) as copies:
            for staged, problems in _staged(chunks, self.keys, self.today):
                for problem in problems:
                    users.report(problem)
                copies.copy(staged)
                self.beat()
            copies.wait()
        for found in self.store.duplicates_in_file():
            self.refuse(
                "users",
                found["line"],
                "identifier",
                "the student number or username appears twice in the file",
            )
        for found in self.store.taken_by_others():
            self.refuse(
                "users",
                found["line"],
                "identifier" if found["number_taken"] else "username",
                "already used by another student record of this school",
            )
        deactivated = 0
        if users.mode == "bulk":
            # Before the upsert, which only writes rows the file names (and
            # so never one this deactivates): it scans the school's records
            # as they were, not the rows just written too.
            deactivated = self.store.deactivate_missing_students(self.now)
        self.store.upsert_students(self.now)
        return deactivated

    def _students_of(self, users):
        """The student rows of users.csv as it is read (1.1 says the role
        in a column, 1.2 in roles.csv: those rows' roles are looked up a
        chunk at a time in ``stage_student_roles``, which
        ``stage_roles`` filled)."""
        for chunk in _chunks(users):
            unsaid = sorted({row["sourced_id"] for row in chunk if not row["role"]})
            students = self.store.students_among(unsaid) if unsaid else set()
            for row in chunk:
                if row["role"]:
                    is_student = row["role"] == "student"
                else:
                    is_student = row["sourced_id"] in students
                if not is_student:
                    self.count("users", skipped=1, kept=-1)
                    continue
                yield row

    def stage_roles(self, roles):
        """Note which users roles.csv makes students (live roles), in the
        import's table: a school's whole roster is never held in memory
        (1.26M ids took more than the worker's cap allows)."""
        self.store.stage_student_roles()
        for chunk in _chunks(roles):
            ids = {row["user_id"] for row in chunk if oneroster.makes_student(row)}
            if ids:
                self.store.add_student_roles(sorted(ids))

    def _live_targets(self, chunk):
        """The live classes and students a chunk of enrolments names (looked
        up per chunk: a large school's whole roster is never in memory)."""
        classes, students = {}, {}
        for found in self.store.live_targets(
            sorted({row["class_id"] for row in chunk}),
            sorted({row["user_id"] for row in chunk}),
        ):
            (classes if found["kind"] == "class" else students)[
                found["external_id"]
            ] = found
        return classes, students

    def enrollments(self, parsed, current_terms, has_terms):
        for chunk in _chunks(parsed):
            classes, students = self._live_targets(chunk)
            for row in chunk:
                self._enrollment(row, classes, students, current_terms, has_terms)
            self.beat()
        if parsed.mode == "bulk":
            self.store.delete_missing_memberships()

    def _enrollment(self, row, classes, students, current_terms, has_terms):
        """One enrolment row: the membership kept or dropped, its event."""
        if row["role"] != "student":
            self.count("enrollments", skipped=1, kept=-1)
            return
        klass = classes.get(row["class_id"])
        student = students.get(row["user_id"])
        if row["status"] == "tobedeleted":
            self.store.delete_membership(row["sourced_id"])
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
        self.store.upsert_membership(klass["id"], student["id"], row["sourced_id"])
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

    def _reread(self, package, entity):
        """``entity``'s reader from the top of its file again."""
        _, readers = oneroster.open_files(
            oneroster.open_package(package), _SeenInTable(self.store)
        )
        return readers[entity]

    def event(self, event_type, payload):
        self.store.add_event(event_type, payload, f"import:{self.id}")

    # -- the whole import ---------------------------------------------------------
    def run(self, package):
        # Checked whole up front (zip, manifest, every announced file's
        # header); rows are read, checked and applied a chunk at a time.
        self.store.stage_file_ids()
        version, readers = oneroster.open_files(
            oneroster.open_package(package), _SeenInTable(self.store)
        )
        self.beat()
        self.store.lock_school()
        if "academicSessions" in readers:
            self.terms(readers["academicSessions"])
        if "classes" in readers:
            self.classes(readers["classes"])
        if "users" in readers:
            self.stage_roles(readers.get("roles", ()))
            readers["users"] = self.students(
                readers["users"], lambda: self._reread(package, "users")
            )
        self.beat()
        if "enrollments" in readers:
            self.enrollments(
                readers["enrollments"],
                self.store.current_terms(self.today),
                self.store.has_terms(),
            )
        for entity, reader in readers.items():
            reader.drain()  # files no step applies (orgs, courses) are checked too
            self.count(
                entity, read=reader.read, kept=reader.kept, refused=reader.refused
            )
            self.errors.extend(reader.errors)
            self.warnings.extend(reader.warnings)
        self.store.record_errors(self.id, self.errors)
        self.event(
            "roster_imported",
            {
                "school_code": self.school_code,
                "import_id": str(self.id),
                "since": self.started_at.isoformat(),
            },
        )
        self.store.finish(self.id, version, self.progress, self.warnings)
        self.store.commit()


# One encoder for every student's document (json.dumps with an option
# builds a new encoder per call).
_document_json = json.JSONEncoder(ensure_ascii=False).encode

# Rows read, checked and applied at a time: bounds the import's memory
# whatever the file's size (IMPORT_CHUNK_ROWS moves it). With the pool,
# workers+1 chunks are in flight: 10,000 rows took 288 MiB at 250k
# students, 2,500 rows 146 MiB and ran as fast.
CHUNK_ROWS = 2_500


def _chunk_rows():
    return int(os.environ.get("IMPORT_CHUNK_ROWS") or CHUNK_ROWS)


def _chunks(rows, size=None):
    """Lists of at most ``size`` items of an iterable, as it is consumed."""
    size = size or _chunk_rows()
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def student_tuple(row, keys, today):
    """``(tuple, row error or None)`` of one student row."""
    number = row["id_number"]
    normalised, problem, error = (None, None, None)
    if number:
        normalised, problem = domain.sealable_id(row["id_type"], number, today)
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
        domain.STUDENT_URN: {
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
        keys.id_sealer.seal(number) if number else None,
        keys.id_hash(normalised) if normalised else None,
        domain.id_hint(normalised or number),
        problem,
        row["grade"],
        row["class_name"],
        row["department"],
        row["enrollment_year"],
        _document_json(doc),
        row["modified"],
    ), error


def staged_students(rows, keys, today, lead=None):
    """``(the rows for stage_students in COPY's text format, row errors)``
    of a chunk of student rows; given ``lead`` (``new_student_lead``), the
    rows for students (NEW_STUDENT_COLUMNS) instead."""
    tuples, errors = [], []
    for row in rows:
        staged, error = student_tuple(row, keys, today)
        tuples.append(staged if lead is None else staged[1:])  # [0]: the line
        if error is not None:
            errors.append(error)
    return copy_text(tuples, lead or ""), errors


def _staged(chunks, keys, today, lead=None):
    """``staged_students`` of each chunk (given ``lead``), in order. A file
    that fills its first chunk is shared between this process and a pool of
    ``IMPORT_POOL_WORKERS`` processes: normalising, sealing and hashing the
    ID numbers, the names and the documents is most of an import's CPU.
    Each chunk goes to the pool while it has fewer than ``workers + 1``
    chunks waiting (one at work in each process and one queued, so it never
    idles); when it is full this process works the chunk itself instead of
    waiting — one pool process alone was the import's critical path, with
    this one reading and COPYing a third of the time and idle the rest.
    The chunks are yielded in file order whoever worked them.

    The workers are spawned, not forked: a forked child shares, then
    copies, the parent's pages (the pool of #20 doubled the memory), a
    spawned one holds only the modules the rows need — which is why this
    module imports no SCIM library (the rows' ID rules live in ``domain``):
    a spawned worker imports it. They read the keys from the environment,
    as this process does."""
    chunks = iter(chunks)
    first = next(chunks, None)
    if first is None:
        return
    workers, process_cap = 0, None
    if len(first) >= _chunk_rows():  # a small file is worked here alone
        workers, process_cap = _pool_size(
            int(os.environ.get("IMPORT_POOL_WORKERS", DEFAULT_POOL_WORKERS))
        )
    if not workers:
        yield staged_students(first, keys, today, lead)
        for chunk in chunks:
            yield staged_students(chunk, keys, today, lead)
        return
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_pool_process,
        initargs=(process_cap,),
    )
    # Futures in file order: the pool's, and finished ones for the chunks
    # worked here. At most workers + _AHEAD_OF_COPY chunks are held (memory
    # stays bounded by the chunk).
    in_flight = deque()
    try:
        for chunk in itertools.chain((first,), chunks):
            waiting = sum(not future.done() for future in in_flight)
            if waiting <= workers:
                in_flight.append(pool.submit(_pool_staged_students, chunk, today, lead))
            else:
                in_flight.append(_finished(staged_students(chunk, keys, today, lead)))
            while in_flight and (
                in_flight[0].done() or len(in_flight) > workers + _AHEAD_OF_COPY
            ):
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _CopiesBehind:
    """Each chunk's COPY (``copy``, a store method) on a thread of its own,
    in file order, while this thread reads and checks the next rows. A
    COPY is mostly waiting on PostgreSQL (the GIL released), and this
    thread — reading, checking, claiming, handing chunks to the pool — was
    the import's critical path with the two in series. At most
    ``_COPIES_HELD`` chunks wait or run: memory stays bounded by the chunk.

    A COPY's error is raised in this thread. ``refused`` turns true when a
    COPY returns False (``copy_new_students``: a unique index refused a
    row); the COPYs queued behind it are not run, or if already running,
    not looked at: the caller undoes what they did."""

    def __init__(self, copy):
        self._copy = copy
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="import-copy")
        self._held = deque()
        self.refused = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._thread.shutdown(wait=True, cancel_futures=True)

    def copy(self, encoded):
        """Queue ``encoded``'s COPY; waits only while the queue is full."""
        self._held.append(self._thread.submit(self._copy, encoded))
        while self._held and (self._held[0].done() or len(self._held) > _COPIES_HELD):
            self._settle(self._held.popleft())

    def wait(self):
        """Every queued COPY done."""
        while self._held:
            self._settle(self._held.popleft())

    def _settle(self, future):
        if self.refused:
            if not future.cancel():
                future.exception()  # ran behind the refusal: to be undone
        elif future.result() is False:
            self.refused = True


# Chunks whose COPY runs or waits at once.
_COPIES_HELD = 2


# Chunks held beyond one per pool process before the oldest is waited for.
_AHEAD_OF_COPY = 2


def _finished(result):
    future = Future()
    future.set_result(result)
    return future


# The service caps the worker's address space at IMPORT_MEMORY_LIMIT_MB so
# that an import outgrowing its pod fails on its own. The pool shares that
# budget: each pool process gets _POOL_PROCESS_MIB of it (~80 MiB used with
# 2,500-row chunks), the worker keeps the rest and at least _WORKER_MIN_MIB
# (224 MiB was too little at the package size limit: MemoryError); as many
# pool processes as fit — one under the default 448 MiB, two from 544.
_POOL_PROCESS_MIB = 112
_WORKER_MIN_MIB = 320
DEFAULT_POOL_WORKERS = 1


def _pool_size(wanted):
    """``(pool processes, each one's cap in MiB or None)``: as many as the
    address-space cap allows, the worker's own cap lowered to what they
    leave it (the sum stays the cap). Uncapped, nothing is capped."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return wanted, None
    budget_mib = soft // (1024 * 1024)
    workers = max(0, min(wanted, (budget_mib - _WORKER_MIN_MIB) // _POOL_PROCESS_MIB))
    if workers:
        cap_address_space(budget_mib - workers * _POOL_PROCESS_MIB)
    return workers, _POOL_PROCESS_MIB


_WORKER_KEY_NAMES = ("REGISTRY_ID_SEAL_KEY", "REGISTRY_ID_LOOKUP_KEY")
_pool_keys = None  # a pool process's keys, read from its environment


def _start_pool_process(process_cap):
    global _pool_keys
    if process_cap:
        cap_address_space(process_cap)
    _pool_keys = keys_from(os.environ, _WORKER_KEY_NAMES)


def _pool_staged_students(rows, today, lead):
    return staged_students(rows, _pool_keys, today, lead)


class _SeenInTable:
    """``oneroster.SeenIds`` kept in the import's temporary table
    ``stage_file_ids`` (one round trip per batch of rows): the ids of a
    file at the size limit stay out of the worker's memory, and the bulk
    deactivations read the same table."""

    def __init__(self, store):
        self.store = store

    def claim(self, entity, ids):
        first = {}
        for index, sourced_id in enumerate(ids):
            first.setdefault(sourced_id, index)
        if not first:
            return []
        new = self.store.claim_file_ids(entity, first)
        return [
            first[sourced_id] != index or sourced_id not in new
            for index, sourced_id in enumerate(ids)
        ]


def main(import_id):
    store = ImportStore.connect(os.environ["REGISTRY_SYNC_DB_URI"])
    keys = keys_from(os.environ, _WORKER_KEY_NAMES)
    try:
        row = store.load_import(import_id)
        if row is None:
            log.warning("import %s is not running; nothing to do", import_id)
            return 0
        # The fetched buffer is let go once copied: kept in ``row`` it held
        # the package twice for the whole import (~20 MiB at the size limit).
        package = bytes(row.pop("package"))
        job = Import(store, row, keys, datetime.now(timezone.utc))
        started = time.monotonic()
        try:
            job.run(package)
        except oneroster.PackageError as exc:
            store.rollback()
            store.fail(import_id, exc.code, exc.detail)
            log.info("import %s refused: %s", import_id, exc.code)
            return 0
        except Exception as exc:  # a bug or a lost database: nothing applied
            store.rollback()
            log.exception("import %s crashed", import_id)
            store.fail(import_id, "import_error", type(exc).__name__)
            return 1
        log.info(
            "import %s done in %.2f s: %s",
            import_id,
            time.monotonic() - started,
            json.dumps(job.progress),
        )
        return 0
    finally:
        _stop_pool_processes()
        store.close()


def _stop_pool_processes():
    """A pool whose shutdown failed — its manager thread never started, the
    address space spent — leaves its processes waiting for work, and this
    interpreter's exit would wait on them for ever (the import long since
    marked failed). None are left after a clean import."""
    for child in multiprocessing.active_children():
        child.terminate()
        child.join(5)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main(sys.argv[1]))
