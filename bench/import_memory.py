"""A OneRoster import at the package size limit within a pod's memory.

Builds a users.csv package as large as the gateway admits (its body limit,
``BODY_LIMITS["roster"]``, minus the multipart slack), stores it as a
running import and runs the real worker (``python -m
services.registry_sync.import_worker``) in a process whose address space is
capped (RLIMIT_AS, inherited by its forked pool), sampling the PSS of its
whole process tree. Prints one JSON line: students, zip and unpacked bytes,
seconds, peak memory and its ratio to the cap; exits non-zero if the import
did not succeed under the cap.

    python -m bench.import_memory [--cap-mib 448] [--zip-mib 20] [--roles-file]

``--roles-file``: the same students as OneRoster 1.2 has them (roles.csv
beside users.csv, so the zip is larger).

448 MiB is the registry_sync pod's 512 Mi limit less what the service
itself holds (~64 MiB of it here; measure yours)."""

import argparse
import io
import os
import sys
import uuid
import zipfile

import psycopg2

from bench.harness import emit
from bench.registry import LOOKUP_KEY, SEAL_KEY, _school, roster_zip, roster_zip_12
from services.common.plumbing.testing import (
    TestDatabases,
    check_infra,
    random_ref,
    run_under_memory_cap,
)


def students_for(zip_bytes, build=roster_zip):
    """How many bench students make a zip (``build``) of about ``zip_bytes``."""
    sample = 20_000
    per_student = len(build(sample)) / sample
    return int(zip_bytes / per_student)


def run_import(uri, package, cap_mib, school="BENCHMEM", env_extra=None):
    """Store ``package`` as a running import of a fresh school and run the
    worker on it under the cap: ``(status, progress, peak MiB, seconds)``.
    ``env_extra``: more settings for the worker (IMPORT_POOL_WORKERS, …)."""
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    import_id = uuid.uuid4()
    with conn.cursor() as cur:
        _school(cur, school)
        cur.execute(
            "INSERT INTO imports (id, school_code, status, package, created_at,"
            " started_at, heartbeat_at) VALUES (%s, %s, 'running', %s, now(),"
            " now(), now())",
            (str(import_id), school, package),
        )
    env = {
        **os.environ,
        "REGISTRY_SYNC_DB_URI": uri,
        "REGISTRY_ID_SEAL_KEY": SEAL_KEY,
        "REGISTRY_ID_LOOKUP_KEY": LOOKUP_KEY,
        "MALLOC_ARENA_MAX": "1",  # as the service's runner sets it
        **(env_extra or {}),
    }
    code, peak, seconds = run_under_memory_cap(
        [sys.executable, "-m", "services.registry_sync.import_worker", str(import_id)],
        env,
        cap_mib,
    )
    with conn.cursor() as cur:
        cur.execute(
            "SELECT status, progress FROM imports WHERE id = %s", (str(import_id),)
        )
        status, progress = cur.fetchone()
    conn.close()
    return (status if code == 0 else f"exit {code}: {status}"), progress, peak, seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cap-mib", type=int, default=448)
    parser.add_argument("--zip-mib", type=float, default=20)
    parser.add_argument("--roles-file", action="store_true")
    args = parser.parse_args()
    check_infra()
    build = roster_zip_12 if args.roles_file else roster_zip
    students = students_for(args.zip_mib * 1024 * 1024 * 0.97, build)
    package = build(students)
    unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(package)).infolist())
    dbs = TestDatabases(run_id=random_ref("benchmem"), services=("registry_sync",))
    dbs.create()
    try:
        status, progress, peak, seconds = run_import(
            dbs.uris["registry_sync"], package, args.cap_mib
        )
    finally:
        dbs.drop()
    emit(
        {
            "bench": "oneroster_import_memory",
            "oneroster_version": "1.2" if args.roles_file else "1.1",
            "students": students,
            "zip_bytes": len(package),
            "unpacked_bytes": unpacked,
            "status": status,
            "kept": (progress or {}).get("users", {}).get("kept"),
            "seconds": round(seconds, 1),
            "peak_pss_mib": round(peak, 1),
            "cap_mib": args.cap_mib,
            "ratio_to_cap": round(peak / args.cap_mib, 3),
            "target": "succeeded, ratio_to_cap < 1",
        }
    )
    return 0 if status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
