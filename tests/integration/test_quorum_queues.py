"""QUEUE_TYPE=quorum on this machine's real RabbitMQ (a quorum queue works
on one node as on three): each service's RPC queue and each reliable event
handler's queue are declared as quorum queues, the reply and broadcast
queues stay classic, and calls and events flow through them — with the
redelivery of a crashed handler's event, which quorum queues count."""

import uuid
from urllib.parse import quote, unquote, urlsplit

import pytest
import requests
from nameko.events import BROADCAST
from nameko.events import event_handler as nameko_event_handler
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.plumbing import base
from services.common.plumbing.db import Database, Store
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.outbox import Outbox
from services.common.plumbing.queues import durable_queue_arguments
from services.common.plumbing.rpc import rpc
from services.common.plumbing.testing import mgmt_auth, mgmt_base, wait_until

handled = []
crashed = set()


class QuorumProducer(base.ServiceBase):
    name = "quorum_producer"
    db = Database(Store)
    outbox = Outbox()

    @rpc
    def announce(self, name):
        self.db.add_event("quorum_checked", {"name": name})
        self.db.commit()
        return name


class QuorumListener(base.ServiceBase):
    name = "quorum_listener"
    db = Database(Store)

    @event_handler("quorum_producer", "quorum_checked")
    def on_quorum_checked(self, payload, envelope):
        if payload["name"].startswith("crash") and payload["name"] not in crashed:
            crashed.add(payload["name"])
            raise RuntimeError("crashed once")  # requeued, delivered again
        handled.append(payload["name"])

    @nameko_event_handler(
        "quorum_producer", "quorum_checked", handler_type=BROADCAST,
        reliable_delivery=False,
    )  # fmt: skip
    def on_quorum_checked_everywhere(self, body):
        pass


def queue_types(vhost):
    answer = requests.get(
        f"{mgmt_base()}/api/queues/{quote(vhost, safe='')}",
        auth=mgmt_auth(),
        timeout=10,
    )
    answer.raise_for_status()
    return {q["name"]: q.get("type", "classic") for q in answer.json()}


@pytest.fixture
def quorum(container_factory, make_config):
    config = make_config("identity", QUEUE_TYPE="quorum", OUTBOX_POLL_SECONDS=0.2)
    for cls in (QuorumListener, QuorumProducer):
        container_factory(cls, config).start()
    return config


def test_durable_shared_queues_are_quorum_and_calls_and_events_flow(quorum):
    vhost = unquote(urlsplit(quorum["AMQP_URI"]).path.lstrip("/")) or "/"
    with ServiceRpcProxy("quorum_producer", quorum) as proxy:
        names = [f"ok-{uuid.uuid4().hex[:6]}", f"crash-{uuid.uuid4().hex[:6]}"]
        for name in names:
            assert proxy.announce(name) == name
    wait_until(lambda: set(names) <= set(handled), message="both events handled once")
    assert sorted(handled).count(names[1]) == 1 and names[1] in crashed
    types = queue_types(vhost)
    assert types["rpc-quorum_producer"] == "quorum"
    assert types["rpc-quorum_listener"] == "quorum"
    handler_queue = (
        "evt-quorum_producer-quorum_checked--quorum_listener.on_quorum_checked"
    )
    assert types[handler_queue] == "quorum"
    # Exclusive and auto-delete queues cannot be quorum queues: classic.
    broadcast = [n for n in types if "on_quorum_checked_everywhere" in n]
    replies = [n for n in types if n.startswith("rpc.reply")]
    assert broadcast and all(types[n] == "classic" for n in broadcast)
    assert replies and all(types[n] == "classic" for n in replies)


def test_the_queue_type_setting_is_checked():
    assert durable_queue_arguments({}) == {}
    assert durable_queue_arguments({"QUEUE_TYPE": "classic"}) == {}
    assert durable_queue_arguments({"QUEUE_TYPE": "Quorum"}) == {
        "x-queue-type": "quorum"
    }
    with pytest.raises(ValueError):
        durable_queue_arguments({"QUEUE_TYPE": "stream"})
