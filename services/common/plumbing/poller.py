"""A green thread that runs ``work()`` when woken and at least every
``interval`` seconds, backing off while ``work`` keeps failing (broker or
database away). Used by the outbox relay and by delivery queues."""

import logging

import eventlet
from eventlet.event import Event

__all__ = ["Poller"]

log = logging.getLogger(__name__)


class Poller:
    def __init__(self, name, work, interval=1.0, max_backoff=5.0):
        self.name = name
        self.work = work
        self.interval = interval
        self.max_backoff = max_backoff
        self._wakeup = Event()
        self._gt = None
        self._running = False

    def start(self):
        self._running = True
        self._gt = eventlet.spawn(self._run)

    def stop(self):
        self._running = False
        if self._gt is not None:
            self._gt.kill()
            self._gt = None

    def wake(self):
        if not self._wakeup.ready():
            self._wakeup.send(True)

    def _run(self):
        delay = self.interval
        while self._running:
            with eventlet.Timeout(delay, False):
                self._wakeup.wait()
            if self._wakeup.ready():
                self._wakeup.reset()
            try:
                self.work()
                delay = self.interval
            except Exception:
                log.exception("%s failed; retrying in %.1fs", self.name, delay)
                delay = min(delay * 2, self.max_backoff)
