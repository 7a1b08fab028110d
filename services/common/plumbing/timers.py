"""``@timer`` for the services: Nameko's, with the unit of work run the way
``@rpc`` and ``@event_handler`` run theirs (``db.retry_conflicts``).

A housekeeping pass caught by a deadlock, a lost connection or a database
failover is replayed once on a fresh connection; while the database stays
away it ends as ``ServiceUnavailable("database_unavailable")`` — a refusal
the metrics count as ``refused``, not a crash (``EntrypointCrashes`` stays
quiet through a PostgreSQL failover; the next tick tries again).
"""

from nameko.timer import timer as nameko_timer

from services.common.plumbing.db import retry_conflicts

__all__ = ["timer"]


def timer(interval, eager=False):
    def decorate(fn):
        return nameko_timer(interval=interval, eager=eager)(retry_conflicts(fn))

    return decorate
