"""``_CopiesBehind`` runs the import's COPYs on a thread of its own, in
file order, so the worker reads on meanwhile; it holds at most
``_COPIES_HELD`` chunks, raises a COPY's error in the worker's thread, and
after a refused COPY looks at nothing queued behind it. No database: the
COPY is a stand-in that blocks until told to go."""

import threading

import pytest

from services.registry_sync.import_worker import _COPIES_HELD, _CopiesBehind

WAIT = 10  # seconds; only reached when the behaviour is broken


class StandInCopy:
    """A COPY that records its chunk and finishes when released."""

    def __init__(self, results=None):
        self.done, self.started = [], threading.Semaphore(0)
        self.go = threading.Semaphore(0)
        self.results = results or {}

    def __call__(self, chunk):
        self.started.release()
        assert self.go.acquire(timeout=WAIT)
        if isinstance(self.results.get(chunk), Exception):
            raise self.results[chunk]
        self.done.append(chunk)
        return self.results.get(chunk, True)


def test_a_copy_is_queued_and_the_caller_goes_on_while_it_runs():
    copy = StandInCopy()
    with _CopiesBehind(copy) as copies:
        copies.copy("chunk 1")  # returns with the COPY still running
        assert copy.started.acquire(timeout=WAIT)
        assert copy.done == []
        copy.go.release()
        copies.wait()
    assert copy.done == ["chunk 1"]


def test_at_most_the_held_chunks_wait_and_they_are_copied_in_order():
    copy = StandInCopy()
    chunks = [f"chunk {n}" for n in range(_COPIES_HELD + 3)]
    with _CopiesBehind(copy) as copies:
        for chunk in chunks[:_COPIES_HELD]:
            copies.copy(chunk)
        assert copy.done == []
        released = threading.Timer(0.3, lambda: [copy.go.release() for _ in chunks])
        released.start()
        copies.copy(chunks[_COPIES_HELD])  # the queue is full: waits
        assert copy.done[:1] == ["chunk 0"]
        for chunk in chunks[_COPIES_HELD + 1 :]:
            copies.copy(chunk)
        copies.wait()
    assert copy.done == chunks


def test_a_copys_error_is_raised_in_the_callers_thread():
    copy = StandInCopy({"chunk 2": RuntimeError("the COPY broke")})
    with _CopiesBehind(copy) as copies:
        for _ in range(3):
            copy.go.release()
        copies.copy("chunk 1")
        copies.copy("chunk 2")
        with pytest.raises(RuntimeError, match="the COPY broke"):
            copies.wait()
    assert copy.done == ["chunk 1"]


def test_after_a_refused_copy_nothing_behind_it_counts():
    copy = StandInCopy({"chunk 1": False, "chunk 2": RuntimeError("aborted")})
    with _CopiesBehind(copy) as copies:
        copies.copy("chunk 1")
        copies.copy("chunk 2")  # queued behind the refusal
        for _ in range(2):
            copy.go.release()
        copies.wait()  # chunk 2's error is moot: the caller undoes it all
        assert copies.refused


def test_a_merged_copy_returning_nothing_is_not_a_refusal():
    with _CopiesBehind(lambda chunk: None) as copies:
        copies.copy("chunk 1")
        copies.wait()
        assert not copies.refused
