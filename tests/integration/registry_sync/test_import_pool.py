"""A large import's student rows are sealed, hashed and encoded by a pool of
spawned processes (IMPORT_POOL_WORKERS) while the worker reads on: the
records and the row errors it leaves must be exactly those of the same
package worked in the worker alone — order of chunks, kept warnings,
refusals and duplicates included. The real worker, under the service's
address-space cap, against PostgreSQL."""

import psycopg2
import pytest

from bench.import_memory import run_import
from bench.registry import _resident_id, users_zip
from services.common.plumbing.config import load_config
from services.common.plumbing.migrate import SERVICES_ROOT

STUDENTS = 400


def _package():
    rows = []
    for i in range(STUDENTS):
        number = _resident_id(i)
        family, given = "张", f"三{i % 97}"
        if i % 37 == 5:
            number = number[:-1] + ("0" if number[-1] != "0" else "1")  # checksum
        if i % 41 == 7:
            family, given = "歐陽", "偉"  # traditional: converted for matching
        student_number = f"S{i}" if i % 53 != 9 else "S1"  # a duplicate
        enabled = "TRUE" if i % 59 != 3 else "maybe"  # refused
        rows.append(
            f"u{i},active,2026-09-01,{enabled},org1,student,s{i},{given},{family},"
            f"{student_number},resident_id,{number},{i % 30 + 1}班\n"
        )
    return users_zip(rows)


def _left_by(uri, school):
    with psycopg2.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT external_id, user_name, student_number, family_name,"
            " given_name, name_key, active, id_hash, id_hint, id_problem,"
            " class_name, doc::text FROM students WHERE school_code = %s"
            " ORDER BY external_id",
            (school,),
        )
        students = cur.fetchall()
        cur.execute(
            "SELECT e.file, e.line, e.field, e.reason, e.kept FROM import_errors e"
            " JOIN imports i ON i.id = e.import_id WHERE i.school_code = %s"
            " ORDER BY e.file, e.line, e.field",
            (school,),
        )
        errors = cur.fetchall()
    conn.close()
    return students, errors


SERVICE_CAP = int(load_config(SERVICES_ROOT / "registry_sync" / "config.yml")[
    "IMPORT_MEMORY_LIMIT_MB"])  # fmt: skip


# One pool process fits the service's cap; two need 544 MiB.
@pytest.mark.parametrize(("workers", "cap"), [("1", SERVICE_CAP), ("2", 544)])
def test_the_pool_leaves_what_the_worker_alone_leaves(databases, workers, cap):
    uri = databases.uris["registry_sync"]
    package = _package()
    runs = {}
    for school, pool in ((f"ALONE{workers}", "0"), (f"POOL{workers}", workers)):
        status, progress, _, _ = run_import(
            uri,
            package,
            cap,
            school=school,
            env_extra={"IMPORT_POOL_WORKERS": pool, "IMPORT_CHUNK_ROWS": "50"},
        )
        assert status == "succeeded", (status, progress)
        runs[pool] = (progress, *_left_by(uri, school))
    alone, pooled = runs["0"], runs[workers]
    assert pooled == alone
    progress, students, errors = pooled
    assert progress["users"]["refused"] > 5 and len(students) > 300
    assert {error[2] for error in errors} >= {
        "metadata.idNumber",  # kept, with its problem
        "enabledUser",
        "identifier",
    }
    assert any(student[4] == "偉" and "欧阳" in student[5] for student in students)
