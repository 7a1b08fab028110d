"""The broker policy deploy/k8s/rabbitmq.yaml declares, applied to this
machine's real RabbitMQ: the broker accepts its definition, and a message
that is rejected on every delivery (a consumer that dies on it) stops
looping at the delivery limit and lands in the dead-letter queue."""

import time
from pathlib import Path
from urllib.parse import quote

import amqp
import pytest
import requests
import yaml

from services.common.plumbing.testing import (
    RABBIT_AMQP,
    TestVhost,
    mgmt_auth,
    mgmt_base,
    wait_until,
)

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "rabbitmq.yaml"


def manifest(kind):
    for doc in yaml.safe_load_all(MANIFEST.read_text()):
        if doc and doc["kind"] == kind:
            return doc["spec"]
    raise LookupError(kind)


@pytest.fixture
def vhost():
    made = TestVhost().create()
    yield made
    made.delete()


def test_the_delivery_limit_policy_dead_letters_a_poison_message(vhost):
    policy, exchange, queue = (
        manifest("Policy"),
        manifest("Exchange"),
        manifest("Queue"),
    )
    limit = policy["definition"]["delivery-limit"]
    applied = requests.put(
        f"{mgmt_base()}/api/policies/{quote(vhost.name, safe='')}/{policy['name']}",
        json={
            "pattern": policy["pattern"],
            "apply-to": policy["applyTo"],
            "priority": policy["priority"],
            "definition": policy["definition"],
        },
        auth=mgmt_auth(),
        timeout=10,
    )
    assert applied.status_code in (201, 204), applied.text  # the broker accepts it

    host = RABBIT_AMQP.split("@")[-1].split("/")[0]
    user, password = mgmt_auth()
    conn = amqp.Connection(
        host, userid=user, password=password, virtual_host=vhost.name
    )
    conn.connect()
    try:
        channel = conn.channel()
        channel.exchange_declare(
            exchange["name"], "fanout", durable=True, auto_delete=False
        )
        channel.queue_declare(queue["name"], durable=True, auto_delete=False,
                              arguments={"x-queue-type": "quorum"})  # fmt: skip
        channel.queue_bind(queue["name"], exchange["name"])
        # As the vhost's default type would make Nameko's RPC queue.
        channel.queue_declare("rpc-poisoned", durable=True, auto_delete=False,
                              arguments={"x-queue-type": "quorum"})  # fmt: skip
        channel.basic_publish(amqp.Message(b"poison", delivery_mode=2),
                              exchange="", routing_key="rpc-poisoned")  # fmt: skip

        def next_delivery(wait=3.0):
            """The next delivery, or None when none comes within ``wait``:
            publishing and requeueing reach a quorum queue asynchronously."""
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                message = channel.basic_get("rpc-poisoned")
                if message is not None:
                    return message
                time.sleep(0.02)
            return None

        deliveries = 0
        while deliveries <= limit + 5 and (message := next_delivery()) is not None:
            deliveries += 1
            channel.basic_reject(message.delivery_tag, requeue=True)
        assert deliveries == limit + 1, deliveries  # then it stopped coming back
        # at-least-once dead-lettering hands it over asynchronously.
        dead = wait_until(lambda: channel.basic_get(queue["name"]), timeout=10,
                          message="the poison message in the dead-letter queue")  # fmt: skip
        assert dead.body == b"poison"
        channel.basic_ack(dead.delivery_tag)
    finally:
        conn.close()
