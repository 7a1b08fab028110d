"""Group commit for green threads: many threads each hand one row to write,
and the rows that arrive while a write is in flight go out together in the
next one.

The first thread to arrive writes (it leads); every thread that arrives
while it writes waits for the batch its row went into. Nothing waits for a
timer or a size: a lone row is written at once, as before, and under load a
write carries whatever gathered during the previous one — the more threads,
the fewer statements per row. A thread returns once its own row is written,
or raises what the write of its batch raised.

    recorder = GroupCommit(store_rows_in_one_statement)
    recorder.add(row)  # returns when ``row`` is written
"""

from eventlet.event import Event

__all__ = ["GroupCommit"]


class GroupCommit:
    def __init__(self, write_batch):
        self._write_batch = write_batch  # writes a list of rows, in one go
        self._pending = []
        self._pending_done = Event()
        self._leading = False

    def add(self, row):
        self._pending.append(row)
        done = self._pending_done
        if self._leading:
            done.wait()  # raises what the write of this row's batch raised
            return
        self._leading = True
        own_failure = None
        try:
            # Lead until nothing is pending, so no row waits on a leader
            # that has gone; the leader's own row is in the first batch.
            while self._pending:
                batch, batch_done = self._pending, self._pending_done
                self._pending, self._pending_done = [], Event()
                try:
                    self._write_batch(batch)
                except BaseException as exc:
                    batch_done.send_exception(exc)
                    if not isinstance(exc, Exception):
                        raise  # killed: the batch's waiters are not left hanging
                    if batch_done is done:
                        own_failure = exc
                else:
                    batch_done.send(None)
        finally:
            self._leading = False
        if own_failure is not None:
            raise own_failure
