"""What every back-end service has: request context, metrics and a ``health``
RPC that also proves its database answers."""

from services.common.plumbing.config import KeyGuard
from services.common.plumbing.context import RequestContext
from services.common.plumbing.metrics import Metrics
from services.common.plumbing.rpc import rpc

__all__ = ["ServiceBase"]


class ServiceBase:
    """Mix into each service class; the class must define ``name`` and ``db``.

    Import the module (``from services.common.plumbing import base``), not the class:
    ``nameko run`` treats every class with entrypoints in a service module as
    a service to run.
    """

    request_context = RequestContext()
    metrics = Metrics()
    key_guard = KeyGuard()

    @rpc
    def health(self):
        """Liveness with a database round trip: ``{service, status, database}``."""
        database = "ok" if self.db.ping() else "down"
        return {"service": self.name, "status": "ok", "database": database}
