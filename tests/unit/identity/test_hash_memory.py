"""argon2's buffer stays in the malloc arena once identity's hasher is set
up, even with the launcher's ``MALLOC_MMAP_THRESHOLD_`` fixed at 1 MiB: a
hash must not map and fault in 19 MiB afresh (6 ms of kernel CPU on a 19 ms
hash). Each case runs in a process of its own: malloc's settings are
process-wide."""

import json
import os
import subprocess
import sys

PROBE = """
import json, resource, sys
from services.identity.dependencies import keep_hash_memory_resident
from services.identity.passwords import new_hasher
if sys.argv[1] == "kept":
    assert keep_hash_memory_resident(19456)
hasher = new_hasher()
stored = hasher.hash("a password long enough")
hasher.verify(stored, "a password long enough")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    hasher.verify(stored, "a password long enough")
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"faults_per_hash": (after - before) / 10}))
"""


def faults_per_hash(mode):
    env = {
        **os.environ,
        "MALLOC_ARENA_MAX": "2",
        "MALLOC_MMAP_THRESHOLD_": "1048576",  # as the launcher and image set it
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["faults_per_hash"]


def test_a_hash_reuses_its_buffer_once_the_hasher_keeps_it():
    # 19 MiB is ~4,900 pages: mapped afresh, each hash faults them all in.
    assert faults_per_hash("mapped") > 4000
    assert faults_per_hash("kept") < 500
