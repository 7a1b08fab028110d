"""RPC with deadlines.

Nameko 2.14's service-to-service ``RpcProxy`` waits for ever. Here:

* ``ServiceRpc(target, timeout)`` — a proxy dependency whose calls give up
  after ``timeout`` seconds (``DeadlineExceeded``) and map "no such queue"
  to ``ServiceUnavailable``. It writes the absolute deadline into the
  context data (``nameko.deadline`` header), never extending one set by a
  caller upstream.
* ``rpc`` — the entrypoint decorator every service uses instead of Nameko's:
  a request whose deadline has already passed is answered with
  ``DeadlineExceeded`` without running, so a service that comes back after an
  outage does not burn its workers on answers nobody waits for; a unit of
  work aborted by a deadlock or serialization failure is run again.

Deadlines are wall-clock epoch seconds: services on different hosts need
synchronised clocks (NTP), as any deadline propagation does.

This module also registers the ``services.common.errors`` classes with
Nameko so remote errors arrive as the same classes.
"""

import sys
import time

import eventlet
from marshmallow import ValidationError
from nameko.exceptions import RemoteError, UnknownService, deserialize_to_instance
from nameko.rpc import Rpc, RpcProxy

from services.common.context import DEADLINE_KEY
from services.common.db import retry_conflicts
from services.common.errors import (
    ALL_ERROR_CLASSES,
    DeadlineExceeded,
    InvalidRequest,
    ServiceError,
    ServiceUnavailable,
    find_nul,
)

__all__ = ["rpc", "ServiceRpc", "DeadlineRpc"]

for _cls in ALL_ERROR_CLASSES:
    deserialize_to_instance(_cls)


class DeadlineRpc(Rpc):
    """Nameko's ``@rpc`` that refuses work whose caller has stopped waiting."""

    def __init__(self, expected_exceptions=(), sensitive_arguments=(), **kwargs):
        # Every ServiceError is an answer, not a crash: log it as expected.
        expected = expected_exceptions
        if not isinstance(expected, tuple):
            expected = (expected,)
        super().__init__(
            expected_exceptions=expected + (ServiceError, ValidationError),
            sensitive_arguments=sensitive_arguments,
            **kwargs,
        )

    def handle_message(self, body, message):
        deadline = (message.headers or {}).get(f"nameko.{DEADLINE_KEY}")
        if deadline is not None and time.time() > float(deadline):
            self._refuse(message, DeadlineExceeded("deadline_exceeded"))
            return
        nul_at = find_nul(body, "payload") if isinstance(body, dict) else None
        if nul_at:  # PostgreSQL cannot store it: malformed, not a crash later
            self._refuse(
                message,
                InvalidRequest(
                    "invalid_request",
                    {"errors": {nul_at: ["must not contain the NUL character"]}},
                ),
            )
            return
        super().handle_message(body, message)

    def _refuse(self, message, error):
        try:
            raise error
        except ServiceError:
            self.rpc_consumer.handle_result(message, None, sys.exc_info())

    def handle_result(self, message, worker_ctx, result, exc_info):
        # A payload that fails its marshmallow schema is the caller's
        # mistake: answer InvalidRequest naming the fields, not a crash.
        if exc_info is not None and isinstance(exc_info[1], ValidationError):
            try:
                raise InvalidRequest(
                    "invalid_request", {"errors": exc_info[1].messages}
                ) from None
            except InvalidRequest:
                exc_info = sys.exc_info()
        return super().handle_result(message, worker_ctx, result, exc_info)


def rpc(*args, **kwargs):
    """``@rpc`` / ``@rpc(expected_exceptions=...)``: a ``DeadlineRpc``
    entrypoint whose method is replayed whole on a database conflict
    (``services.common.db.retry_conflicts``), so a deadlock under a burst
    is retried, not answered as an internal error."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return DeadlineRpc.decorator(retry_conflicts(args[0]))

    def decorate(fn):
        return DeadlineRpc.decorator(*args, **kwargs)(retry_conflicts(fn))

    return decorate


class _DeadlineServiceProxy:
    def __init__(self, worker_ctx, inner, service_name, timeout):
        self._worker_ctx = worker_ctx
        self._inner = inner
        self._service_name = service_name
        self._timeout = timeout

    def _deadline(self, timeout):
        now = time.time()
        mine = now + timeout
        upstream = self._worker_ctx.data.get(DEADLINE_KEY)
        deadline = min(mine, float(upstream)) if upstream else mine
        self._worker_ctx.data[DEADLINE_KEY] = deadline
        return deadline

    def call_async(self, method, *args, **kwargs):
        """Send now, collect later with ``wait(reply)``; many may be in flight."""
        timeout = kwargs.pop("_timeout", self._timeout)
        deadline = self._deadline(timeout)
        try:
            reply = getattr(self._inner, method).call_async(*args, **kwargs)
        except UnknownService:
            raise ServiceUnavailable(
                "service_unavailable", {"service": self._service_name}
            ) from None
        return _PendingReply(reply, deadline, self._service_name)

    def __getattr__(self, method):
        def call(*args, **kwargs):
            return self.call_async(method, *args, **kwargs).result()

        return call


class _PendingReply:
    def __init__(self, reply, deadline, service_name):
        self._reply = reply
        self._deadline = deadline
        self.service_name = service_name

    def result(self):
        remaining = max(self._deadline - time.time(), 0.001)
        try:
            with eventlet.Timeout(remaining):
                return self._reply.result()
        except eventlet.Timeout:
            raise DeadlineExceeded(
                "deadline_exceeded", {"service": self.service_name}
            ) from None
        except RemoteError:
            # The remote crashed on something it did not expect; its log has
            # the details, the caller gets a generic, stable error.
            raise ServiceError(
                "internal_error", {"service": self.service_name}
            ) from None


class ServiceRpc(RpcProxy):
    """``RpcProxy`` with a per-call deadline in seconds: ``timeout`` if given,
    else the ``RPC_TIMEOUT_SECONDS`` config key, else 5."""

    def __init__(self, target_service, timeout=None, **options):
        super().__init__(target_service, **options)
        self.timeout = timeout

    def setup(self):
        super().setup()
        if self.timeout is None:
            self.timeout = float(self.container.config.get("RPC_TIMEOUT_SECONDS", 5.0))

    def get_dependency(self, worker_ctx):
        inner = super().get_dependency(worker_ctx)
        return _DeadlineServiceProxy(
            worker_ctx, inner, self.target_service, self.timeout
        )
