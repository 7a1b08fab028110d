"""The request id: taken from the gateway's ``X-Request-Id`` (or made there),
carried in Nameko's context data through every RPC and event, and bound to
the current green thread so every log line can show it."""

import re
import uuid

from eventlet.corolocal import local
from nameko.extensions import DependencyProvider

__all__ = [
    "RequestContext",
    "current_request_id",
    "new_request_id",
    "clean_request_id",
    "REQUEST_ID_KEY",
    "DEADLINE_KEY",
]

REQUEST_ID_KEY = "request_id"
DEADLINE_KEY = "deadline"  # absolute epoch seconds; see services.common.plumbing.rpc

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_green = local()


def new_request_id():
    return uuid.uuid4().hex


def clean_request_id(value):
    """A caller's id if it is safe to echo and log, else a fresh one."""
    if value and _REQUEST_ID_RE.match(value):
        return value
    return new_request_id()


def current_request_id():
    return getattr(_green, "request_id", None)


def bind_request_id(request_id):
    _green.request_id = request_id


class RequestContext(DependencyProvider):
    """Binds the worker's request id to its green thread for logging, and puts
    one into the context data if the caller sent none (timers, direct calls),
    so downstream RPCs and events carry it."""

    def worker_setup(self, worker_ctx):
        request_id = worker_ctx.data.get(REQUEST_ID_KEY) or new_request_id()
        worker_ctx.data[REQUEST_ID_KEY] = request_id
        bind_request_id(request_id)

    def worker_teardown(self, worker_ctx):
        bind_request_id(None)

    def get_dependency(self, worker_ctx):
        return worker_ctx.data.get(REQUEST_ID_KEY)
