"""Services given a list of broker addresses (``AMQP_URI`` with ``;``
between them, kombu's failover form) connect to the first that answers and
move to another when theirs goes away — the RPC client, the RPC and event
consumers and the outbox relay. On this machine the "nodes" are two TCP
proxies in front of the one broker; closing a proxy drops every connection
through it, as a node's death does."""

import socket
import uuid
from urllib.parse import urlsplit

import eventlet
import pytest
from eventlet.green import socket as green_socket

from services.common.contract.errors import DeadlineExceeded, ServiceUnavailable
from services.common.plumbing import base
from services.common.plumbing.db import Database, Store
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.outbox import Outbox
from services.common.plumbing.rpc import ServiceRpc, rpc
from services.common.plumbing.testing import RABBIT_AMQP, wait_until

handled = []


class FailoverProducer(base.ServiceBase):
    name = "failover_producer"
    db = Database(Store)
    outbox = Outbox()

    @rpc
    def announce(self, name):
        self.db.add_event("failover_checked", {"name": name})
        self.db.commit()
        return name


class FailoverCaller(base.ServiceBase):
    name = "failover_caller"
    producer = ServiceRpc("failover_producer", timeout=5)

    @rpc
    def relay(self, name):
        return self.producer.announce(name)


class FailoverListener(base.ServiceBase):
    name = "failover_listener"
    db = Database(Store)

    @event_handler("failover_producer", "failover_checked")
    def on_failover_checked(self, payload, envelope):
        handled.append(payload["name"])


class TcpProxy:
    """A broker "node": forwards every connection to the real broker until
    ``close()`` drops the listener and every connection through it."""

    def __init__(self, target):
        self.target = target
        self.listener = green_socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.accepted = 0
        self.pool = eventlet.GreenPool()
        self.pool.spawn_n(self._accept)

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = green_socket.create_connection(self.target)
            self.accepted += 1
            self.sockets += [client, upstream]
            self.pool.spawn_n(self._pipe, client, upstream)
            self.pool.spawn_n(self._pipe, upstream, client)

    @staticmethod
    def _pipe(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


@pytest.fixture
def nodes():
    broker = urlsplit(RABBIT_AMQP)
    proxies = [TcpProxy((broker.hostname, broker.port or 5672)) for _ in range(2)]
    yield proxies
    for proxy in proxies:
        proxy.close()


def call(container, method, *args):
    from nameko.testing.services import entrypoint_hook

    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def test_services_move_to_another_broker_address_when_theirs_dies(
    container_factory, make_config, nodes
):
    vhost_path = urlsplit(make_config("identity")["AMQP_URI"]).path
    first, second = nodes
    uris = ";".join(
        f"amqp://guest:guest@127.0.0.1:{proxy.port}{vhost_path}" for proxy in nodes
    )
    config = make_config("identity", AMQP_URI=uris, OUTBOX_POLL_SECONDS=0.2)
    containers = {
        cls.name: container_factory(cls, config)
        for cls in (FailoverProducer, FailoverCaller, FailoverListener)
    }
    for container in containers.values():
        container.start()
    caller = containers["failover_caller"]

    before = f"before-{uuid.uuid4().hex[:6]}"
    assert call(caller, "relay", before) == before
    wait_until(lambda: before in handled, message="the event before the fault")
    assert first.accepted > 0 and second.accepted == 0  # all on the first node

    first.close()  # the node dies: every connection through it drops

    def relay_succeeds(name):
        try:
            return call(caller, "relay", name) == name
        except (ServiceUnavailable, DeadlineExceeded):
            return False

    after = f"after-{uuid.uuid4().hex[:6]}"
    wait_until(lambda: relay_succeeds(after), timeout=60, interval=0.5,
               message="calls through the other node")  # fmt: skip
    wait_until(lambda: after in handled, timeout=60, message="events after the fault")
    assert second.accepted > 0
    names = [f"more-{n}-{uuid.uuid4().hex[:4]}" for n in range(10)]
    assert [call(caller, "relay", n) for n in names] == names
    wait_until(lambda: set(names) <= set(handled), message="every later event")
