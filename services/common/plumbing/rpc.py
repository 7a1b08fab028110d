"""RPC with deadlines, over a faster hop than stock Nameko's.

* ``ServiceRpc(target, timeout)`` — a proxy dependency whose calls give up
  after ``timeout`` seconds (``DeadlineExceeded``) and answer "no such
  service" with ``ServiceUnavailable`` at once. It writes the absolute
  deadline into the context data (``nameko.deadline`` header), never
  extending one set by a caller upstream.
* ``rpc`` — the entrypoint decorator every service uses instead of Nameko's:
  a request whose deadline has already passed is answered with
  ``DeadlineExceeded`` without running, so a service that comes back after
  an outage does not burn its workers on answers nobody waits for; strings
  holding NUL are refused as malformed; a unit of work aborted by a
  deadlock or serialization failure is run again.

The hop (``RpcClient`` for callers, ``ReplyChannel`` for callees)
------------------------------------------------------------------
Nameko 2.14 publishes every request and every reply on a fresh kombu
connection from its pool, persistent and *with a publisher confirm it
waits for*; a profile of the bare HTTP → RPC → echo hop put 40 % of the
caller's CPU and 47 % of the callee's into that publishing. Here:

* a caller container keeps **one connection and channel** (``RpcClient``):
  requests are published on it without confirms, non-persistent, with
  ``mandatory`` set, so a call to a service with no queue comes back as
  ``basic.return`` and fails at once with ``service_unavailable``; replies
  arrive on **one exclusive, auto-delete, no-ack reply queue** and are
  matched to their waiting caller by correlation id in the connection's
  read loop — no green thread per reply;
* a callee container sends every reply on **one long-lived channel**
  (``ReplyChannel``), without confirms, non-persistent, serialized once.

Why dropping confirms and persistence is safe *for RPC*: the caller holds
a deadline for every call and every command is idempotent, so a request or
reply lost in a broker crash is a timeout the client retries — the same
outcome as a reply lost on its way back today. A broker that goes away
fails every pending call at once (``service_unavailable``) and the client
reconnects with backoff. **Events keep confirms and persistence**: they go
through the outbox relay (``services.common.plumbing.outbox``), which marks a row
sent only once the broker has confirmed it; that path does not change.

The wire format is Nameko's own (``nameko-rpc`` topic exchange, routing key
``<service>.<method>``, ``{"args", "kwargs"}`` in, ``{"result", "error"}``
out, context in ``nameko.*`` headers, replies routed by ``reply_to``), so a
stock ``ClusterRpcProxy`` / ``nameko shell`` still calls every service and
a stock ``@rpc`` service still answers ``ServiceRpc`` (both tested).

Deadlines are wall-clock epoch seconds: services on different hosts need
synchronised clocks (NTP), as any deadline propagation does.

This module also registers the ``services.common.contract.errors`` classes with
Nameko so remote errors arrive as the same classes.
"""

import inspect
import logging
import socket
import sys
import time
import uuid

import amqp
import eventlet
from eventlet.event import Event
from eventlet.semaphore import Semaphore
from kombu import Connection, Queue
from kombu.utils.json import dumps as json_dumps
from kombu.utils.json import loads as json_loads
from marshmallow import ValidationError
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.exceptions import (
    IncorrectSignature,
    MalformedRequest,
    RemoteError,
    UnserializableValueError,
    deserialize,
    deserialize_to_instance,
    serialize,
)
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.messaging import HeaderEncoder
from nameko.rpc import Rpc, get_rpc_exchange

from services.common.contract.errors import (
    ALL_ERROR_CLASSES,
    DeadlineExceeded,
    InvalidRequest,
    ServiceError,
    ServiceUnavailable,
    find_nul,
)
from services.common.plumbing.context import DEADLINE_KEY
from services.common.plumbing.db import retry_conflicts
from services.common.plumbing.queues import TypedRpcConsumer

__all__ = [
    "rpc",
    "ServiceRpc",
    "DeadlineRpc",
    "RpcClient",
    "ReplyChannel",
    "check_call_signature",
]

log = logging.getLogger(__name__)

for _cls in ALL_ERROR_CLASSES:
    deserialize_to_instance(_cls)

# What a waiting call is woken with when no reply will ever come.
_UNROUTABLE = object()  # basic.return: no queue for <service>.<method>
_DISCONNECTED = object()  # the connection to the broker went away

# A broken or closed connection, whichever layer notices it first.
_CONNECTION_ERRORS = (
    OSError,
    socket.error,
    *Connection().connection_errors,
    *Connection().channel_errors,
)


JSON = "application/json"


def _only_reader(connection):
    """py-amqp reads the socket inside ``basic_publish`` (a zero-timeout
    ``drain_events``) when the broker may announce ``connection.blocked``:
    a wasted syscall per publish, and a second reader of a socket that a
    read loop owns corrupts frames. Publishers here never read."""
    capabilities = connection.connection.client_properties.get("capabilities")
    if capabilities is not None:
        capabilities["connection.blocked"] = False


def _close_quietly(connection):
    if connection is not None:
        try:
            connection.close()
        except Exception:  # already broken: nothing to close cleanly
            pass


def check_call_signature(entrypoint, args, kwargs):
    """Nameko's signature check without its cost: ``inspect.getcallargs``
    per call (3–4 % of a hop's CPU) becomes a ``Signature`` computed once.
    ``inspect.signature`` also follows ``functools.wraps`` to the method
    itself, where ``getcallargs`` saw only a wrapper's ``*args, **kwargs``."""
    signature = getattr(entrypoint, "_cached_signature", None)
    if signature is None:
        method = getattr(entrypoint.container.service_cls, entrypoint.method_name)
        signature = entrypoint._cached_signature = inspect.signature(method)
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise IncorrectSignature(str(exc)) from None


# -- callee ----------------------------------------------------------------------


class ReplyChannel(SharedExtension):
    """One long-lived channel per container for every RPC reply: no confirm,
    non-persistent, serialized once. Reconnects on the next reply after a
    failure; a reply that cannot be sent is a timeout for its caller."""

    def setup(self):
        config = self.container.config
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        self.exchange = get_rpc_exchange(config)
        self._lock = Semaphore(1)
        self._connection = None
        self._channel = None

    def _connect(self):
        connection = Connection(self.amqp_uri, heartbeat=0)
        connection.connect()
        _only_reader(connection)
        self._channel = connection.channel()
        self._connection = connection

    def _disconnect(self):
        connection, self._connection, self._channel = self._connection, None, None
        _close_quietly(connection)

    def stop(self):
        with self._lock:
            self._disconnect()

    kill = stop

    @staticmethod
    def encode(result, exc_info):
        """``(body, result, exc_info)``: the reply serialized once (kombu's
        JSON, as Nameko's own); an unserializable result becomes Nameko's
        ``UnserializableValueError``, as stock Nameko answers it."""
        error = serialize(exc_info[1]) if exc_info is not None else None
        try:
            body = json_dumps({"result": result, "error": error})
        except Exception:
            exc_info = sys.exc_info()
            error = serialize(UnserializableValueError(result))
            result = None
            body = json_dumps({"result": None, "error": error})
        return body, result, exc_info

    def send(self, message, result, exc_info):
        body, result, exc_info = self.encode(result, exc_info)
        reply_to = message.properties.get("reply_to")
        if not reply_to:
            return result, exc_info  # nobody waits for an answer
        correlation_id = message.properties.get("correlation_id")
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._channel is None:
                        self._connect()
                    self._channel.basic_publish(
                        amqp.Message(
                            body,
                            content_type=JSON,
                            content_encoding="utf-8",
                            correlation_id=correlation_id,
                            delivery_mode=1,
                        ),
                        exchange=self.exchange.name,
                        routing_key=reply_to,
                    )
                    break
                except _CONNECTION_ERRORS as exc:
                    self._disconnect()
                    if attempt == 2:
                        log.warning(
                            "reply to %s not sent (%s); the caller will time out",
                            correlation_id,
                            type(exc).__name__,
                        )
        return result, exc_info


class DeadlineRpc(Rpc):
    """Nameko's ``@rpc`` that refuses work whose caller has stopped waiting,
    and answers on the container's one ``ReplyChannel``; its queue is of the
    configured type (``services.common.plumbing.queues``)."""

    rpc_consumer = TypedRpcConsumer()
    replies = ReplyChannel()

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
        try:
            super().handle_message(body, message)
        except (IncorrectSignature, MalformedRequest) as exc:
            # Called with the wrong arguments: the caller's mistake.
            self._refuse(
                message,
                InvalidRequest("invalid_request", {"errors": {"_call": [str(exc)]}}),
            )

    def check_signature(self, args, kwargs):
        check_call_signature(self, args, kwargs)

    def _refuse(self, message, error):
        try:
            raise error
        except ServiceError:
            self.handle_result(message, None, None, sys.exc_info())

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
        result, exc_info = self.replies.send(message, result, exc_info)
        self.rpc_consumer.queue_consumer.ack_message(message)
        return result, exc_info


def rpc(*args, **kwargs):
    """``@rpc`` / ``@rpc(expected_exceptions=...)``: a ``DeadlineRpc``
    entrypoint whose method is replayed whole on a database conflict
    (``services.common.plumbing.db.retry_conflicts``), so a deadlock under a burst
    is retried, not answered as an internal error."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return DeadlineRpc.decorator(retry_conflicts(args[0]))

    def decorate(fn):
        return DeadlineRpc.decorator(*args, **kwargs)(retry_conflicts(fn))

    return decorate


# -- caller ----------------------------------------------------------------------


class RpcClient(SharedExtension):
    """One connection per caller container: requests out without confirms
    on a channel of their own, replies in on one exclusive no-ack queue,
    matched by correlation id in the read loop. Reconnects with backoff; a
    lost connection fails every pending call at once.

    A call that times out renews the request channel (at most once every
    ``RENEW_AFTER_SECONDS``). Why: on a RabbitMQ cluster, a channel that
    first publishes to a quorum queue while the queue is electing a new
    leader (its node just died) kept sending into the old leader until that
    node came back — 25 s of timeouts for one caller and one queue while
    every other channel worked (the cluster fault suite's node kill). A new
    channel looks the leader up afresh; pending calls are not touched (their
    replies come on the reply channel).

    When no reply at all has come for ``SILENT_SECONDS`` and calls keep
    timing out, the connection itself is suspect: its node may sit in a
    partition's minority, accepting requests it cannot route and holding a
    reply queue nobody can reach (seen: a gateway answering 504 to every
    call for as long as the partition lasted, and after). The client then
    reconnects, starting from the next broker of ``AMQP_URI``'s list."""

    HEARTBEAT_SECONDS = 30
    MAX_BACKOFF_SECONDS = 5.0
    RENEW_AFTER_SECONDS = 2.0
    SILENT_SECONDS = 8.0

    def setup(self):
        config = self.container.config
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        self.exchange = get_rpc_exchange(config)
        self.routing_key = uuid.uuid4().hex
        self.queue_name = (
            f"rpc.reply-fast-{self.container.service_name}-{self.routing_key}"
        )
        self._pending = {}
        self._write_lock = Semaphore(1)
        self._connection = None
        self._channel = None  # requests go out here; replies come in apart
        self._running = False
        self._renew_wanted = None  # the service whose call timed out
        self._renewed_at = 0.0
        self._brokers = self.amqp_uri.split(";")
        self._first_broker = 0  # where the next connection starts its list
        self._last_heard = time.monotonic()  # a reply, or the connection's start
        self._silent_timeouts = 0
        self._reconnect_wanted = False

    def start(self):
        self._running = True
        self._reader = self.container.spawn_managed_thread(
            self._read_loop, identifier="rpc_client_read_loop"
        )

    def stop(self):
        self._running = False
        self._drop_connection()
        self._fail_pending()

    kill = stop

    # -- connection ---------------------------------------------------------
    def _connect(self):
        brokers = (
            self._brokers[self._first_broker :] + self._brokers[: self._first_broker]
        )
        connection = Connection(";".join(brokers), heartbeat=self.HEARTBEAT_SECONDS)
        connection.connect()
        self._last_heard, self._silent_timeouts = time.monotonic(), 0
        _only_reader(connection)
        channel = connection.channel()
        # Declared here, in the read loop (the socket's one reader), once.
        queue = Queue(
            self.queue_name,
            exchange=self.exchange,
            routing_key=self.routing_key,
            exclusive=True,
            auto_delete=True,
            durable=False,
        )
        queue(channel).declare()
        channel.basic_consume(self.queue_name, no_ack=True, callback=self._on_reply)
        self._connection = connection
        self._channel = self._request_channel()

    def _request_channel(self):
        """A new channel for requests (from the read loop: it reads the
        broker's answer to the open)."""
        channel = self._connection.channel()
        channel.events["basic_return"].add(self._on_return)
        return channel

    def _renew_request_channel(self):
        service, self._renew_wanted = self._renew_wanted, None
        with self._write_lock:
            old, self._channel = self._channel, self._request_channel()
        self._renewed_at = time.monotonic()
        log.info("RPC request channel renewed: a call to %s timed out", service)
        try:
            old.close()
        except Exception:  # noqa: BLE001 - the old channel is of no more use
            pass

    def request_timed_out(self, service):
        """A call to ``service`` got no answer in time: renew the request
        channel, unless it was renewed just now; reconnect elsewhere when
        nothing at all has answered for ``SILENT_SECONDS``."""
        now = time.monotonic()
        self._silent_timeouts += 1
        if now - self._last_heard >= self.SILENT_SECONDS and self._silent_timeouts >= 2:
            self._reconnect_wanted = True
        elif now - self._renewed_at >= self.RENEW_AFTER_SECONDS:
            self._renew_wanted = service

    def _drop_connection(self):
        connection, self._connection, self._channel = self._connection, None, None
        _close_quietly(connection)

    def _fail_pending(self):
        pending, self._pending = self._pending, {}
        for event in pending.values():
            if not event.ready():
                event.send(_DISCONNECTED)

    def _read_loop(self):
        backoff = 0.1
        while self._running:
            try:
                self._connect()
                backoff = 0.1
                while self._running:
                    if self._reconnect_wanted:
                        self._reconnect_wanted = False
                        self._first_broker = (self._first_broker + 1) % len(
                            self._brokers
                        )
                        log.warning(
                            "RPC connection silent for %.0f s while calls time out;"
                            " reconnecting, starting from another broker",
                            time.monotonic() - self._last_heard,
                        )
                        break
                    if self._renew_wanted:
                        self._renew_request_channel()
                    connection = self._connection
                    if connection is None:  # stop() dropped it: we are done
                        break
                    try:
                        connection.drain_events(timeout=0.5)
                    except socket.timeout:
                        if not self._running:  # stopped while we waited
                            break
                        connection.heartbeat_check()
            except _CONNECTION_ERRORS as exc:
                if not self._running:
                    break
                log.warning(
                    "RPC connection lost (%s); pending calls failed, reconnecting"
                    " in %.1fs",
                    type(exc).__name__,
                    backoff,
                )
            finally:
                self._drop_connection()
                self._fail_pending()
            if self._running:
                eventlet.sleep(backoff)
                backoff = min(backoff * 2, self.MAX_BACKOFF_SECONDS)

    # -- replies, from the read loop -----------------------------------------
    def _on_reply(self, message):
        self._last_heard, self._silent_timeouts = time.monotonic(), 0
        event = self._pending.pop(message.properties.get("correlation_id"), None)
        if event is not None and not event.ready():
            event.send(json_loads(message.body))

    def _on_return(self, exception, exchange, routing_key, message):
        event = self._pending.pop(message.properties.get("correlation_id"), None)
        if event is not None and not event.ready():
            event.send(_UNROUTABLE)

    # -- calls ------------------------------------------------------------------
    def publish(self, service, method, args, kwargs, headers, wait_ready=1.0):
        """Send one request; returns ``(correlation_id, event)``."""
        if self._channel is None:
            # Starting up or reconnecting: a short wait beats a refusal.
            with eventlet.Timeout(wait_ready, False):
                while self._channel is None and self._running:
                    eventlet.sleep(0.01)
        if self._channel is None:
            raise ServiceUnavailable("service_unavailable", {"service": service})
        correlation_id = uuid.uuid4().hex
        event = Event()
        self._pending[correlation_id] = event
        try:
            message = amqp.Message(
                json_dumps({"args": args, "kwargs": kwargs}),
                content_type=JSON,
                content_encoding="utf-8",
                application_headers=headers,
                reply_to=self.routing_key,
                correlation_id=correlation_id,
                delivery_mode=1,
            )
            with self._write_lock:  # the channel is read under it: it may be renewed
                channel = self._channel
                if channel is None:
                    raise ConnectionError("the connection is being re-established")
                channel.basic_publish(
                    message,
                    exchange=self.exchange.name,
                    routing_key=f"{service}.{method}",
                    mandatory=True,
                )
        except _CONNECTION_ERRORS:
            self._pending.pop(correlation_id, None)
            raise ServiceUnavailable(
                "service_unavailable", {"service": service}
            ) from None
        return correlation_id, event

    def forget(self, correlation_id):
        self._pending.pop(correlation_id, None)


class _DeadlineServiceProxy(HeaderEncoder):
    def __init__(self, worker_ctx, client, service_name, timeout):
        self._worker_ctx = worker_ctx
        self._client = client
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
        """Send now, collect later with ``.result()``; many may be in flight."""
        timeout = kwargs.pop("_timeout", self._timeout)
        deadline = self._deadline(timeout)
        correlation_id, event = self._client.publish(
            self._service_name,
            method,
            args,
            kwargs,
            self.get_message_headers(self._worker_ctx),
        )
        return _PendingReply(
            self._client, correlation_id, event, deadline, self._service_name
        )

    def __getattr__(self, method):
        def call(*args, **kwargs):
            return self.call_async(method, *args, **kwargs).result()

        return call


class _PendingReply:
    def __init__(self, client, correlation_id, event, deadline, service_name):
        self._client = client
        self._correlation_id = correlation_id
        self._event = event
        self._deadline = deadline
        self.service_name = service_name

    def result(self):
        remaining = max(self._deadline - time.time(), 0.001)
        try:
            with eventlet.Timeout(remaining):
                body = self._event.wait()
        except eventlet.Timeout:
            self._client.forget(self._correlation_id)
            self._client.request_timed_out(self.service_name)
            raise DeadlineExceeded(
                "deadline_exceeded", {"service": self.service_name}
            ) from None
        if body is _UNROUTABLE or body is _DISCONNECTED:
            raise ServiceUnavailable(
                "service_unavailable", {"service": self.service_name}
            )
        error = body.get("error")
        if not error:
            return body.get("result")
        remote = deserialize(error)
        if isinstance(remote, RemoteError) or not isinstance(remote, ServiceError):
            # The remote crashed on something it did not expect; its log has
            # the details, the caller gets a generic, stable error.
            raise ServiceError("internal_error", {"service": self.service_name})
        raise remote


class ServiceRpc(DependencyProvider):
    """A proxy to ``target_service`` with a per-call deadline in seconds:
    ``timeout`` if given, else the ``RPC_TIMEOUT_SECONDS`` config key, else 5.
    All ``ServiceRpc`` of a container share its one ``RpcClient``."""

    client = RpcClient()

    def __init__(self, target_service, timeout=None):
        self.target_service = target_service
        self.timeout = timeout

    def bind(self, container, attr_name=None):
        # Also usable inside another dependency provider (the gateway's
        # Principal holds identity's): a sub-extension is bound without an
        # attribute name, gets its lifecycle calls, and its owner asks it
        # for a worker's proxy with get_dependency(worker_ctx).
        return super().bind(container, attr_name)

    def setup(self):
        if self.timeout is None:
            self.timeout = float(self.container.config.get("RPC_TIMEOUT_SECONDS", 5.0))

    def get_dependency(self, worker_ctx):
        return _DeadlineServiceProxy(
            worker_ctx, self.client, self.target_service, self.timeout
        )
