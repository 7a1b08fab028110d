"""A OneRoster import within the memory the registry_sync pod gives it
(issue #20 §6): the real worker process, under the address-space cap the
service applies to it (IMPORT_MEMORY_LIMIT_MB, 448 MiB), imports a
250,000-student package — a fifth of what fits the 20 MB size limit, and
far more than the worker could hold before rows were streamed (it died with
MemoryError under this cap at this size). `python -m bench.import_memory`
runs the package at the size limit itself (1.26M students)."""

import io
import zipfile

from bench.import_memory import run_import
from bench.registry import roster_zip
from services.common.plumbing.config import load_config
from services.common.plumbing.migrate import SERVICES_ROOT

STUDENTS = 250_000


def test_a_large_package_imports_under_the_services_memory_cap(databases):
    cap = int(load_config(SERVICES_ROOT / "registry_sync" / "config.yml")[
        "IMPORT_MEMORY_LIMIT_MB"])  # fmt: skip
    package = roster_zip(STUDENTS)
    unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(package)).infolist())
    assert unpacked > 25 * 1024 * 1024  # rows that no longer sit in memory whole
    status, progress, peak_mib, _ = run_import(
        databases.uris["registry_sync"], package, cap, school="MEMCAP"
    )
    assert status == "succeeded", (status, progress)
    assert progress["users"]["kept"] == STUDENTS
    # Bounded by the chunk, not the file: well inside the cap.
    assert peak_mib < cap * 0.6, peak_mib


def test_the_runner_caps_its_workers_address_space():
    import subprocess
    import sys

    from services.registry_sync.dependencies import _address_space_cap

    shown = subprocess.run(
        [sys.executable, "-c",
         "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"],
        preexec_fn=_address_space_cap(300), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(shown.stdout) == 300 * 1024 * 1024
