"""argon2's buffer stays in the malloc arena once identity's hasher is set
up, even with the launcher's ``MALLOC_MMAP_THRESHOLD_`` fixed at 1 MiB: a
hash must not map and fault in 19 MiB afresh (6 ms of kernel CPU on a 19 ms
hash). Each case runs in a process of its own: malloc's settings are
process-wide."""

import os

import pytest

from services.common.plumbing.testing import python_probe
from services.identity.dependencies import _IdleTrim

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
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
resident = rss()
if sys.argv[2] == "trim":
    from services.identity.dependencies import hand_back_free_memory
    assert hand_back_free_memory()
print(json.dumps({
    "faults_per_hash": (after - before) / 10,
    "released_mib": (resident - rss()) / 2**20,
}))
"""


def probe(mode, trim="keep"):
    env = {
        **os.environ,
        "MALLOC_ARENA_MAX": "2",
        "MALLOC_MMAP_THRESHOLD_": "1048576",  # as the launcher and image set it
    }
    return python_probe(PROBE, mode, trim, env=env)


def test_a_hash_reuses_its_buffer_once_the_hasher_keeps_it():
    # 19 MiB is ~4,900 pages: mapped afresh, each hash faults them all in.
    assert probe("mapped")["faults_per_hash"] > 4000
    assert probe("kept")["faults_per_hash"] < 500


def test_a_trim_hands_the_kept_buffer_back():
    assert probe("kept", "trim")["released_mib"] > 15


class _Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_the_buffers_are_trimmed_only_after_the_hasher_has_been_idle():
    trims = []
    clock = _Clock()
    idle = _IdleTrim(lambda: trims.append(clock.now), 3, clock)
    assert not idle.tick()  # nothing hashed since start: nothing to hand back
    idle.begin()
    clock.now += 10
    assert not idle.tick()  # a hash in flight, however long
    idle.end()
    clock.now += 2.9
    assert not idle.tick()  # idle, but not long enough
    clock.now += 0.2
    assert idle.tick()
    clock.now += 60
    assert not idle.tick()  # trimmed once per idle spell
    idle.begin()
    idle.end()
    clock.now += 3
    assert idle.tick()
    assert trims == [pytest.approx(113.1), pytest.approx(176.1)]
