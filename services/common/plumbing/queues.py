"""Which type the platform's durable queues are: ``QUEUE_TYPE`` in a
service's config, ``classic`` (the default) or ``quorum``.

A queue's type is fixed when it is first declared and no policy can change
it, and RabbitMQ before 3.11 has no per-vhost default type, so on a cluster
the type must be asked for at declaration. Nameko 2.14 declares its queues
without ``x-queue-type``; these entrypoint extensions add it to the durable,
shared ones — each service's RPC queue and each reliable event handler's
queue. Reply queues and broadcast handlers' queues are exclusive or
auto-delete: they stay classic (quorum queues cannot be either).
"""

import logging

from nameko.events import EventHandler
from nameko.messaging import QueueConsumer
from nameko.rpc import RpcConsumer

__all__ = [
    "QUEUE_TYPE_CONFIG_KEY",
    "durable_queue_arguments",
    "TypedRpcConsumer",
    "TypedEventHandler",
    "SafeQueueConsumer",
]

log = logging.getLogger(__name__)

QUEUE_TYPE_CONFIG_KEY = "QUEUE_TYPE"
QUEUE_TYPES = ("classic", "quorum")


def durable_queue_arguments(config):
    """The ``x-queue-type`` argument a durable shared queue is declared with
    (none for classic, the broker's default)."""
    queue_type = (config.get(QUEUE_TYPE_CONFIG_KEY) or "classic").strip().lower()
    if queue_type not in QUEUE_TYPES:
        raise ValueError(
            f"{QUEUE_TYPE_CONFIG_KEY} must be one of {QUEUE_TYPES}, not {queue_type!r}"
        )
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}


def _typed(queue, config):
    arguments = durable_queue_arguments(config)
    if arguments and queue.durable and not queue.exclusive and not queue.auto_delete:
        queue.queue_arguments = {**(queue.queue_arguments or {}), **arguments}


class SafeQueueConsumer(QueueConsumer):
    """Nameko's consumer, whose ack and requeue survive a connection that
    died under them. Nameko 2.14 guards them against py-amqp's
    ``ConnectionError`` only; a reset socket raises the builtin
    ``ConnectionResetError``, which crashed the whole container (identity
    died this way in a rolling restart of the cluster, acking a call it had
    already answered). The broker takes an unacknowledged message back when
    the connection goes: redelivered, it is handled again (handlers and
    commands are idempotent)."""

    def ack_message(self, message):
        self._settle("ack", super().ack_message, message)

    def requeue_message(self, message):
        self._settle("requeue", super().requeue_message, message)

    @staticmethod
    def _settle(what, settle, message):
        try:
            settle(message)
        except OSError as exc:
            log.warning("%s lost with the connection (%s): the broker redelivers",
                        what, type(exc).__name__)  # fmt: skip


class TypedRpcConsumer(RpcConsumer):
    """The service's ``rpc-<service>`` queue, of the configured type."""

    queue_consumer = SafeQueueConsumer()

    def setup(self):
        super().setup()
        _typed(self.queue, self.container.config)


class TypedEventHandler(EventHandler):
    """An event handler's queue, of the configured type when it is durable
    and shared (a reliable service-pool handler)."""

    queue_consumer = SafeQueueConsumer()

    def setup(self):
        super().setup()
        _typed(self.queue, self.container.config)
