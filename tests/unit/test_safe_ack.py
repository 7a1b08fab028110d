"""An ack or requeue on a connection that died under it is logged, not
raised: raised, it crashed the whole container (nameko 2.14 guards only
py-amqp's ConnectionError, not a reset socket's ConnectionResetError)."""

import pytest
from nameko.messaging import QueueConsumer

from services.common.plumbing.queues import (
    SafeQueueConsumer,
    TypedEventHandler,
    TypedRpcConsumer,
)


class ResetMessage:
    """A delivery whose connection looks alive until the socket is written."""

    class channel:  # noqa: N801 - shaped like kombu's message.channel
        connection = object()

    def ack(self):
        raise ConnectionResetError(104, "Connection reset by peer")

    def requeue(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_stock_nameko_lets_a_reset_socket_escape_the_ack():
    with pytest.raises(ConnectionResetError):
        QueueConsumer().ack_message(ResetMessage())


def test_the_platforms_consumer_survives_a_reset_socket(caplog):
    consumer = SafeQueueConsumer()
    consumer.ack_message(ResetMessage())
    consumer.requeue_message(ResetMessage())
    assert "ack lost with the connection (ConnectionResetError)" in caplog.text
    assert "requeue lost with the connection (BrokenPipeError)" in caplog.text


def test_every_platform_entrypoint_consumes_through_it():
    assert isinstance(TypedRpcConsumer.queue_consumer, SafeQueueConsumer)
    assert isinstance(TypedEventHandler.queue_consumer, SafeQueueConsumer)
