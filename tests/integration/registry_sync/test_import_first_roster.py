"""A school's first OneRoster roster is COPYd straight into students; any
other import stages its rows and merges them. Both must leave the same
records, the same row errors and the same progress — and a first roster a
unique index refuses (a number named twice in the file, a SCIM create
winning a race for a number) must come out exactly as the merge would
have left it, nothing of the undone attempt kept. Either way each chunk's
COPY runs on a thread of its own while the worker reads on: what runs
behind a refused COPY is undone with it, and a COPY's error fails the
import. The real worker (its pool included) against PostgreSQL, in this
process so the store's calls can be counted."""

import io
import threading
import time
import uuid

import psycopg2
import psycopg2.extensions
import pytest

from bench.registry import (
    LOOKUP_KEY,
    SEAL_KEY,
    USERS_HEADER,
    _resident_id,
    users_zip,
    users_zip_12,
)
from services.registry_sync import import_store, import_worker
from services.registry_sync.import_store import ImportStore

STUDENTS = 300


def _package(repeat_number_at=None, repeat_user_name_at=None, students=STUDENTS):
    return users_zip(_rows(repeat_number_at, repeat_user_name_at, students))


def _rows(repeat_number_at=None, repeat_user_name_at=None, students=STUDENTS):
    """Students with the kinds of rows an import treats apart: a flawed ID
    number (kept, flagged), a traditional name, a refused row, a teacher,
    an inactive student — and, when asked, a row repeating student 10's
    number or user name (its user name in capitals: unique as lower-case),
    in a later chunk than student 10's."""
    rows = []
    for i in range(students):
        number, family, given = _resident_id(i), "张", f"三{i % 97}"
        if i % 37 == 5:
            number = number[:-1] + ("0" if number[-1] != "0" else "1")
        if i % 41 == 7:
            family, given = "歐陽", "偉"
        role = "teacher" if i % 43 == 2 else "student"
        status = "inactive" if i % 47 == 4 else "active"
        enabled = "TRUE" if i % 59 != 3 else "maybe"
        student_number = "S10" if i == repeat_number_at else f"S{i}"
        user_name = "S10" if i == repeat_user_name_at else f"s{i}"
        rows.append(
            f"u{i},{status},2026-09-01,{enabled},org1,{role},{user_name},{given},"
            f"{family},{student_number},resident_id,{number},{i % 30 + 1}班\n"
        )
    return rows


@pytest.fixture
def import_into(databases, monkeypatch, registry_sql):
    """``import_into(school, package)`` -> ``(paths taken, progress)``: the
    worker's run of ``package`` for a school that exists, and which ways
    its students went in ("copied" straight, "merged")."""
    uri = databases.uris["registry_sync"]
    for name, value in {
        "REGISTRY_SYNC_DB_URI": uri,
        "REGISTRY_ID_SEAL_KEY": SEAL_KEY,
        "REGISTRY_ID_LOOKUP_KEY": LOOKUP_KEY,
        "IMPORT_CHUNK_ROWS": "50",  # several chunks, the pool at work
        "IMPORT_POOL_WORKERS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    paths = []
    copy_new, upsert = ImportStore.copy_new_students, ImportStore.upsert_students

    def copied(store, encoded):
        paths.append("copied")
        return copy_new(store, encoded)

    def merged(store, now):
        paths.append("merged")
        return upsert(store, now)

    monkeypatch.setattr(ImportStore, "copy_new_students", copied)
    monkeypatch.setattr(ImportStore, "upsert_students", merged)

    # The worker is a process of its own, without the tests' green wait
    # callback (COPY cannot run under one).
    green = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)

    def run(school, package, status="succeeded"):
        paths.clear()
        import_id = str(uuid.uuid4())
        registry_sql(
            "INSERT INTO imports (id, school_code, status, package, created_at,"
            " started_at, heartbeat_at) VALUES (%s, %s, 'running', %s, now(),"
            " now(), now())",
            (import_id, school, psycopg2.Binary(package)),
        )
        assert import_worker.main(import_id) == (0 if status == "succeeded" else 1)
        (row,) = registry_sql(
            "SELECT status, progress, error_code FROM imports WHERE id = %s",
            (import_id,),
        )
        assert row["status"] == status, row
        return sorted(set(paths)), row["progress"]

    yield run
    psycopg2.extensions.set_wait_callback(green)


def _school_with(registry_sql, code, scim_number=None):
    """A school; with ``scim_number``, holding one live SCIM-created record
    of that student number (user name ``scim-<number>``)."""
    registry_sql(
        "INSERT INTO schools (code, name, token_hash, token_issued_at, created_at)"
        " VALUES (%s, 'first roster', %s, now(), now())",
        (code, uuid.uuid4().hex),
    )
    if scim_number:
        registry_sql(
            "INSERT INTO students (id, school_code, user_name, student_number,"
            " source, created_at, updated_at) VALUES (gen_random_uuid(), %s, %s,"
            " %s, 'scim', now(), now())",
            (code, f"scim-{scim_number}", scim_number),
        )
    return code


def _left_in(registry_sql, school):
    """Every column of the school's OneRoster records but those an import
    makes afresh (id, school, times, the sealed ID number's random nonce),
    and the import's row errors."""
    students = registry_sql(
        "SELECT to_jsonb(s) - 'id' - 'school_code' - 'created_at' - 'updated_at'"
        " - 'id_sealed' AS record, id_sealed IS NOT NULL AS sealed,"
        " created_at = updated_at AS fresh FROM students s"
        " WHERE school_code = %s AND source = 'oneroster' ORDER BY external_id",
        (school,),
    )
    errors = registry_sql(
        "SELECT e.file, e.line, e.field, e.reason, e.kept FROM import_errors e"
        " JOIN imports i ON i.id = e.import_id WHERE i.school_code = %s"
        " ORDER BY e.file, e.line, e.field",
        (school,),
    )
    return students, errors


def _undone_then_merged(import_into, registry_sql, package, first, merged):
    """``package`` into the school ``first`` is COPYd, undone and merged,
    and leaves what it leaves merged into ``merged``: the row errors."""
    paths, progress = import_into(first, package)
    assert paths == ["copied", "merged"]
    assert import_into(merged, package) == (["merged"], progress)
    assert _left_in(registry_sql, first) == _left_in(registry_sql, merged)
    return _left_in(registry_sql, first)[1]


def test_a_first_roster_is_copied_in_and_leaves_what_the_merge_leaves(
    import_into, registry_sql
):
    package = _package()
    first = _school_with(registry_sql, "FIRST")
    merged = _school_with(registry_sql, "MERGED", scim_number="X1")
    first_paths, first_progress = import_into(first, package)
    merged_paths, merged_progress = import_into(merged, package)
    assert (first_paths, merged_paths) == (["copied"], ["merged"])
    assert first_progress == merged_progress
    assert first_progress["users"]["deactivated"] == 0
    assert _left_in(registry_sql, first) == _left_in(registry_sql, merged)
    students, errors = _left_in(registry_sql, first)
    assert len(students) > 250 and all(student["fresh"] for student in students)
    assert not all(student["record"]["active"] for student in students)
    assert {error["field"] for error in errors} >= {"metadata.idNumber", "enabledUser"}
    # The school's second roster is merged, whatever its first was.
    assert import_into(first, package)[0] == ["merged"]


@pytest.mark.parametrize(
    ("school", "repeat"),
    [("NUMBER", {"repeat_number_at": 261}), ("USERNAME", {"repeat_user_name_at": 130})],
)
def test_a_first_roster_naming_a_student_twice_is_undone_and_merged(
    import_into, registry_sql, school, repeat
):
    first = _school_with(registry_sql, f"FIRST{school}")
    merged = _school_with(registry_sql, f"MERGED{school}", scim_number="X1")
    errors = _undone_then_merged(
        import_into, registry_sql, _package(**repeat), first, merged
    )
    twice = {(e["line"], e["field"]) for e in errors if "twice" in e["reason"]}
    assert twice == {(2 + next(iter(repeat.values())), "identifier")}


def test_a_scim_create_winning_the_race_for_a_number_undoes_the_copy(
    import_into, registry_sql, monkeypatch
):
    """The school had no record when the import looked, then a SCIM create
    took a number the file names before the COPY reached it: stood in for
    by a school whose one record the import is told is not there."""
    package = _package()
    raced = _school_with(registry_sql, "RACED", scim_number="S120")
    merged = _school_with(registry_sql, "RACEMERGED", scim_number="S120")
    looked = ImportStore.has_live_students
    monkeypatch.setattr(
        ImportStore,
        "has_live_students",
        lambda store: store.school_code != raced and looked(store),
    )
    errors = _undone_then_merged(import_into, registry_sql, package, raced, merged)
    taken = {(e["line"], e["field"]) for e in errors if "another" in e["reason"]}
    assert taken == {(122, "identifier")}


# Each COPY test runs on both paths: a first roster (straight into
# students) and a school holding a SCIM record (staged, then merged).
_EITHER_PATH = pytest.mark.parametrize(
    ("copy", "scim_number"),
    [("copy_new_students", None), ("copy_students", "X1")],
    ids=["first roster", "merged"],
)


@_EITHER_PATH
def test_each_chunk_is_copied_on_a_thread_of_its_own(
    import_into, registry_sql, monkeypatch, copy, scim_number
):
    """The COPYs leave the reading thread — the one claiming the rows'
    sourcedIds — free to read on (``_CopiesBehind``)."""
    threads = {"copy": set(), "claim": set()}
    for name, kind in ((copy, "copy"), ("claim_file_ids", "claim")):
        real = getattr(ImportStore, name)

        def watched(store, *args, _real=real, _kind=kind):
            threads[_kind].add(threading.get_ident())
            return _real(store, *args)

        monkeypatch.setattr(ImportStore, name, watched)
    school = _school_with(registry_sql, f"THREAD{copy.upper()}", scim_number)
    import_into(school, _package())
    assert threads["copy"] and threads["claim"]
    assert not threads["copy"] & threads["claim"]


def test_what_ran_behind_a_refused_copy_is_undone_with_it(
    import_into, registry_sql, monkeypatch
):
    """The reader claims on while a COPY the indexes refuse runs: a claim
    landing after the refusal, before the worker sees it — forced here
    right after the refused COPY, for a row near the end of the file —
    must be undone with the attempt, or the second reading would refuse
    that row as named twice."""
    copy = ImportStore.copy_new_students
    late = []

    def refused_then_claimed(store, encoded):
        kept = copy(store, encoded)
        if not kept and not late:
            late.append(store.claim_file_ids("users", ["u999"]))
        return kept

    monkeypatch.setattr(ImportStore, "copy_new_students", refused_then_claimed)
    package = _package(repeat_number_at=261, students=1000)
    first = _school_with(registry_sql, "LATECLAIM")
    merged = _school_with(registry_sql, "LATEMERGED", scim_number="X1")
    errors = _undone_then_merged(import_into, registry_sql, package, first, merged)
    assert late == [{"u999"}]  # claimed after the refusal, not before
    assert not [e for e in errors if e["line"] == 1001]


@_EITHER_PATH
def test_a_copy_failing_on_its_thread_fails_the_import_and_keeps_nothing(
    import_into, registry_sql, monkeypatch, copy, scim_number
):
    real, calls = getattr(ImportStore, copy), []

    def failing_third(store, encoded):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the COPY broke")
        return real(store, encoded)

    monkeypatch.setattr(ImportStore, copy, failing_third)
    school = _school_with(registry_sql, f"BROKEN{copy.upper()}", scim_number)
    import_into(school, _package(), status="failed")
    (row,) = registry_sql(
        "SELECT error_code, error_detail FROM imports WHERE school_code = %s",
        (school,),
    )
    assert (row["error_code"], row["error_detail"]) == ("import_error", "RuntimeError")
    assert _left_in(registry_sql, school) == ([], [])


def test_a_claim_waits_for_the_copy_in_progress_on_the_connection(
    import_into, databases, monkeypatch
):
    """psycopg2 does not keep one thread's statement out of another's COPY
    in progress on the same connection (the transaction breaks): the store
    makes a claim wait for it. Here a claim is made from another thread in
    the middle of a COPY that is held open for a moment."""
    mid_copy = threading.Event()

    class HeldOpen(io.StringIO):
        def read(self, size=-1):
            if self.tell() == 0:  # the first row goes at once
                return self.readline()
            if not mid_copy.is_set():  # then the COPY is held open a moment
                mid_copy.set()
                time.sleep(0.5)
            return super().read(size)

    def held_open(cursor, table, columns, text):
        cursor.copy_expert(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN", HeldOpen(text)
        )

    monkeypatch.setattr(import_store, "copy_encoded", held_open)
    store = ImportStore.connect(databases.uris["registry_sync"])
    try:
        store.stage_file_ids()
        store.stage_students()
        blank = (None,) * (len(import_store.STAGE_STUDENT_COLUMNS) - 3)
        rows = [(n, f"s{n}", f"u{n}", *blank) for n in range(3)]
        encoded = import_store.copy_text(rows)
        claimed = []
        claim = threading.Thread(
            target=lambda: claimed.append(store.claim_file_ids("users", ["u1", "u2"]))
        )
        copy = threading.Thread(target=store.copy_students, args=(encoded,))
        copy.start()
        assert mid_copy.wait(timeout=10)
        claim.start()
        copy.join(timeout=10)
        claim.join(timeout=10)
        assert claimed == [{"u1", "u2"}]
        assert store._rows("SELECT count(*) AS n FROM stage_students")[0]["n"] == 3
    finally:
        store.close()


def test_a_pool_that_cannot_start_leaves_no_process_behind(
    import_into, registry_sql, monkeypatch
):
    """Under the worker's address-space cap a pool's manager thread may not
    start ("can't start new thread"): the import fails as import_error, and
    the pool's processes, already spawned, must not outlive it — the
    worker's exit would wait on them for ever."""
    import multiprocessing
    from concurrent.futures import process

    def cannot_start(thread):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(process._ExecutorManagerThread, "start", cannot_start)
    school = _school_with(registry_sql, "NOTHREAD")
    import_into(school, _package(), status="failed")
    left = multiprocessing.active_children()
    for child in left:  # so that a regression fails here, not hangs the run
        child.kill()
    assert left == []
    assert _left_in(registry_sql, school) == ([], [])


def _package_12(rows):
    """The OneRoster 1.2 twin of ``users_zip(rows)`` (roles in roles.csv),
    with more roles: a teacher role for a student (still a student), a
    student role marked tobedeleted for a teacher (still not one), and a
    role for a user the file does not name."""
    at = USERS_HEADER.split(",").index("role")
    more = []
    for n in range(1, len(rows), 10):
        user, role = rows[n].split(",")[0], rows[n].split(",")[at]
        other, status = (
            ("teacher", "active") if role == "student" else ("student", "tobedeleted")
        )
        more.append(f"x{n},{status},2026-09-01,{user},secondary,{other},org1\n")
    more.append("r-gone,active,2026-09-01,nobody,primary,student,org1\n")
    return users_zip_12(rows, more)


def test_roles_csv_makes_the_same_students_looked_up_a_chunk_at_a_time(
    import_into, registry_sync_roles_spy, registry_sql
):
    """A 1.2 package (roles in roles.csv) leaves what its 1.1 twin (roles
    in a column) leaves; the student roles go to the import's table a chunk
    at a time and are asked about a chunk of users at a time — a school's
    whole roster is never a set in the worker's memory (1.26M ids at the
    size limit took it past its cap)."""
    rows = _rows(students=600)
    by_column = _school_with(registry_sql, "ROLECOLUMN")
    by_file = _school_with(registry_sql, "ROLEFILE")
    column_paths, column_progress = import_into(by_column, users_zip(rows))
    assert registry_sync_roles_spy == {"added": [], "asked": []}
    file_paths, file_progress = import_into(by_file, _package_12(rows))
    assert file_paths == column_paths == ["copied"]
    assert file_progress["users"] == column_progress["users"]
    assert file_progress["roles"]["kept"] > 600
    assert _left_in(registry_sql, by_file) == _left_in(registry_sql, by_column)
    chunk = int(import_worker._chunk_rows())
    added, asked = registry_sync_roles_spy["added"], registry_sync_roles_spy["asked"]
    assert len(added) > 1 and max(added) <= chunk
    assert len(asked) == -(-600 // chunk) and max(asked) <= chunk


@pytest.fixture
def registry_sync_roles_spy(monkeypatch):
    """How many user ids each call staged as students, and asked about."""
    seen = {"added": [], "asked": []}
    add, among = ImportStore.add_student_roles, ImportStore.students_among

    def added(store, ids):
        seen["added"].append(len(ids))
        return add(store, ids)

    def asked(store, ids):
        seen["asked"].append(len(ids))
        return among(store, ids)

    monkeypatch.setattr(ImportStore, "add_student_roles", added)
    monkeypatch.setattr(ImportStore, "students_among", asked)
    return seen
