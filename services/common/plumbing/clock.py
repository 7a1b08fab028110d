"""Time, injected: services read ``now()`` from a ``Clock`` dependency so tests
can freeze it; domain rules receive ``now`` as an argument."""

from datetime import datetime, timedelta, timezone

from nameko.extensions import DependencyProvider

__all__ = ["Clock", "FakeClock", "utc_now"]


def utc_now():
    return datetime.now(timezone.utc)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, at):
        if at.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self.at = at

    def __call__(self):
        return self.at

    def advance(self, **delta):
        self.at = self.at + timedelta(**delta)
        return self.at


class Clock(DependencyProvider):
    """Injects a zero-argument callable returning an aware UTC datetime."""

    def get_dependency(self, worker_ctx):
        return utc_now
