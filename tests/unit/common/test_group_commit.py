"""GroupCommit: rows handed in while a write is in flight go out together
in the next write; each thread returns once its own row is written, or
raises what its batch's write raised."""

import eventlet
import pytest

from services.common.plumbing.group_commit import GroupCommit


class SlowWriter:
    """Writes take a green sleep, so other threads arrive meanwhile; a batch
    holding ``fail_on`` raises."""

    def __init__(self, fail_on=()):
        self.batches = []
        self.fail_on = set(fail_on)

    def __call__(self, batch):
        self.batches.append(list(batch))
        eventlet.sleep(0.01)
        if self.fail_on & set(batch):
            raise RuntimeError("database away")


def _wait(thread):
    with eventlet.Timeout(2):  # a row left waiting fails the test, not hangs it
        return thread.wait()


def _add_all(group, rows):
    """Each row from a thread of its own, started in order; what each
    thread came to."""
    threads = []
    for row in rows:
        threads.append(eventlet.spawn(group.add, row))
        eventlet.sleep(0)  # let it reach add() before the next one starts
    outcomes = []
    for thread in threads:
        try:
            _wait(thread)
            outcomes.append("written")
        except RuntimeError:
            outcomes.append("failed")
    return outcomes


def test_a_lone_row_is_written_at_once_in_a_batch_of_its_own():
    writer = SlowWriter()
    GroupCommit(writer).add("a")
    assert writer.batches == [["a"]]


def test_rows_arriving_during_a_write_go_out_together_in_the_next():
    writer = SlowWriter()
    outcomes = _add_all(GroupCommit(writer), range(6))
    assert writer.batches == [[0], [1, 2, 3, 4, 5]]
    assert outcomes == ["written"] * 6


def test_rows_arriving_after_the_last_write_start_a_new_leader():
    writer = SlowWriter()
    group = GroupCommit(writer)
    _add_all(group, [1, 2])
    _add_all(group, [3])
    assert writer.batches == [[1], [2], [3]]


def test_a_failed_write_fails_only_its_batch_and_the_leader_writes_the_rest():
    writer = SlowWriter(fail_on={0})
    group = GroupCommit(writer)
    threads = [eventlet.spawn(group.add, 0)]
    eventlet.sleep(0)
    threads += [eventlet.spawn(group.add, row) for row in (1, 2)]
    with pytest.raises(RuntimeError):
        _wait(threads[0])  # the leader's own batch failed …
    for thread in threads[1:]:
        _wait(thread)  # … and it still wrote the rows that waited on it
    assert writer.batches == [[0], [1, 2]]


def test_a_failed_later_batch_raises_in_its_threads_not_in_the_leader():
    writer = SlowWriter(fail_on={2})
    outcomes = _add_all(GroupCommit(writer), [1, 2, 3])
    assert writer.batches == [[1], [2, 3]]
    assert outcomes == ["written", "failed", "failed"]
