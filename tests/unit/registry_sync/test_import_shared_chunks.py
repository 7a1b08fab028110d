"""The import worker and its pool share the student rows: a chunk goes to
the pool while it has room (one at work and one queued per process) and is
worked by the worker itself when the pool is full, instead of waiting — one
pool process alone was the import's critical path. Whoever worked a chunk,
the chunks come back in file order, each exactly as the worker alone would
have staged it. Real spawned pool processes; no database."""

import base64
from datetime import date

import pytest

from services.registry_sync import import_worker
from services.registry_sync.keys import keys_from

TODAY = date(2026, 9, 1)
ROWS_PER_CHUNK = 20
KEYS = {
    "REGISTRY_ID_SEAL_KEY": base64.b64encode(b"unit-only-registry-seal-key-32b!").decode(),
    "REGISTRY_ID_LOOKUP_KEY": base64.b64encode(b"unit-only-registry-lookup-key-32").decode(),
}  # fmt: skip


def _row(line):
    return {
        "line": line, "sourced_id": f"u{line}", "status": "active", "modified": None,
        "enabled": True, "role": "student", "username": f"s{line}",
        "given_name": f"三{line % 7}", "family_name": "张", "formatted_name": None,
        "student_number": f"S{line}", "grade": None, "class_name": f"{line % 3}班",
        "department": None, "enrollment_year": None, "student_status": None,
        "id_type": None, "id_number": None,
    }  # fmt: skip


@pytest.fixture
def chunks(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)  # the spawned pool reads them too
    monkeypatch.setenv("IMPORT_CHUNK_ROWS", str(ROWS_PER_CHUNK))
    monkeypatch.setenv("IMPORT_POOL_WORKERS", "1")
    lines = iter(range(2, 2 + 60 * ROWS_PER_CHUNK))
    return [[_row(next(lines)) for _ in range(ROWS_PER_CHUNK)] for _ in range(60)]


# Staged (None), or for a first roster's COPY straight into students.
@pytest.mark.parametrize("lead", [None, "SCHOOL\toneroster\t"])
def test_the_worker_works_chunks_while_the_pool_is_full_and_order_holds(
    chunks, monkeypatch, lead
):
    keys = keys_from(KEYS, tuple(KEYS))
    alone = [import_worker.staged_students(c, keys, TODAY, lead) for c in chunks]
    worked_here = []
    own = import_worker.staged_students

    def noted(rows, keys, today, lead):  # this process's calls: the pool spawns
        worked_here.append(rows[0]["line"])
        return own(rows, keys, today, lead)

    monkeypatch.setattr(import_worker, "staged_students", noted)
    shared = list(import_worker._staged(iter(chunks), keys, TODAY, lead))
    assert shared == alone
    # The pool's start alone (spawning, importing) outlasts several chunks.
    assert worked_here, "the worker waited on a full pool"
    assert len(worked_here) < len(chunks), "the pool worked nothing"
    assert chunks[0][0]["line"] not in worked_here  # the first goes to the pool


def test_a_first_rosters_rows_drop_the_line_behind_the_lead(chunks):
    """For students itself (NEW_STUDENT_COLUMNS): the stage's line column
    gone, the values every record of the import shares in front."""
    keys = keys_from(KEYS, tuple(KEYS))
    staged, errors = import_worker.staged_students(chunks[0], keys, TODAY)
    direct, direct_errors = import_worker.staged_students(
        chunks[0], keys, TODAY, "SCHOOL\toneroster\t"
    )
    assert direct_errors == errors
    staged_lines, direct_lines = staged.splitlines(), direct.splitlines()
    assert len(direct_lines) == len(staged_lines) == len(chunks[0])
    pairs = zip(chunks[0], staged_lines, direct_lines, strict=True)
    for row, staged_line, direct_line in pairs:
        line, rest = staged_line.split("\t", 1)
        assert line == str(row["line"])
        # sealed ID numbers differ (a random nonce each): compare the rest
        assert _unsealed(direct_line) == "SCHOOL\toneroster\t" + _unsealed(rest)


def _unsealed(line):
    return "\t".join(f for f in line.split("\t") if not f.startswith("\\\\x"))
