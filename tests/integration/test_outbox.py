"""The transactional outbox and idempotent handlers, through real PostgreSQL
and RabbitMQ: an event leaves only if its transaction commits, and a handler
that crashes is redelivered and its work done once."""

import uuid

import eventlet
import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.contract.events import new_envelope
from services.common.plumbing import base
from services.common.plumbing.db import Database, Store
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.outbox import Outbox
from services.common.plumbing.rpc import rpc
from services.common.plumbing.testing import wait_until

RECORD_SQL = "INSERT INTO test_widgets (name) VALUES (%(name)s)"


class WidgetStore(Store):
    def create_table(self):
        self.execute(
            "CREATE TABLE IF NOT EXISTS test_widgets "
            "(id serial PRIMARY KEY, name text NOT NULL)"
        )
        self.commit()

    def add_widget(self, name):
        self.execute(RECORD_SQL, {"name": name})

    def count(self, name):
        return self.fetchone(
            "SELECT count(*) AS n FROM test_widgets WHERE name = %(n)s", {"n": name}
        )["n"]


class Failure(Exception):
    pass


class WidgetService(base.ServiceBase):
    name = "widgets"
    db = Database(WidgetStore)
    outbox = Outbox()

    @rpc
    def setup_table(self):
        self.db.create_table()

    @rpc
    def create(self, name, fail_after_write=False):
        self.db.add_widget(name)
        self.db.add_event("widget_created", {"name": name})
        if fail_after_write:
            raise Failure("boom")  # nothing committed: the event must vanish too
        self.db.commit()

    @rpc
    def count(self, name):
        return self.db.count(name)

    @rpc
    def unsent_events(self):
        return self.db.fetchone(
            "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL"
        )["n"]


# Shared with the listener container: same process, green threads.
received = []
attempts = {}
handler_fixed = False  # the poison-event test "deploys a fix" by setting it


class ListenerStore(WidgetStore):
    pass


class WidgetListener(base.ServiceBase):
    name = "widget_listener"
    db = Database(ListenerStore)

    @event_handler("widgets", "widget_created")
    def handle_widget_created(self, payload, envelope):
        name = payload["name"]
        attempts[name] = attempts.get(name, 0) + 1
        self.db.add_widget(name)  # the handler's work, in the claim's transaction
        if name.startswith("crash-once") and attempts[name] == 1:
            raise RuntimeError("handler crashed mid-way")
        if name.startswith("poison") and not handler_fixed:
            raise RuntimeError("this handler cannot take this event")
        received.append({**envelope, "request_id": self.request_context})


@pytest.fixture
def widgets(container_factory, make_config):
    # Both test services share one scratch database (identity's, from this run).
    global handler_fixed
    handler_fixed = False
    config = make_config("identity", OUTBOX_POLL_SECONDS=0.2, EVENT_MAX_ATTEMPTS=3)
    listener = container_factory(WidgetListener, config)
    producer = container_factory(WidgetService, config)
    listener.start()
    producer.start()
    with ServiceRpcProxy("widgets", config) as proxy:
        proxy.setup_table()
        yield proxy


def test_committed_event_is_published_with_envelope(widgets, make_config):
    name = f"ok-{uuid.uuid4().hex[:8]}"
    config = make_config("identity")
    with ServiceRpcProxy(
        "widgets", config, context_data={"request_id": "req-outbox-1"}
    ) as proxy:
        proxy.create(name)
    envelope = wait_until(
        lambda: next((e for e in received if e["payload"]["name"] == name), None),
        message="widget_created to arrive",
    )
    assert envelope["source"] == "widgets"
    assert envelope["event_type"] == "widget_created"
    assert isinstance(envelope["event_id"], uuid.UUID)
    # The producer's request id rode along in the event's headers.
    assert envelope["request_id"] == "req-outbox-1"
    wait_until(lambda: widgets.unsent_events() == 0, message="outbox drained")


def test_event_of_rolled_back_transaction_is_never_published(widgets):
    doomed = f"doomed-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RemoteError):
        widgets.create(doomed, fail_after_write=True)
    # A committed event sent afterwards arrives; by then the doomed one would
    # have too, since the relay sends in outbox order.
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    widgets.create(marker)
    wait_until(
        lambda: any(e["payload"]["name"] == marker for e in received),
        message="marker event",
    )
    assert not any(e["payload"]["name"] == doomed for e in received)
    assert widgets.count(doomed) == 0
    assert widgets.unsent_events() == 0


def test_crashed_handler_is_redelivered_and_its_work_done_once(widgets):
    name = f"crash-once-{uuid.uuid4().hex[:8]}"
    widgets.create(name)
    wait_until(
        lambda: any(e["payload"]["name"] == name for e in received),
        message="redelivered event handled",
    )
    assert attempts[name] == 2  # crashed once, then handled
    # The producer wrote one row; the listener's crashed attempt rolled back,
    # its second attempt wrote one: two rows in the shared table, not three
    # (committed just after the handler returns: wait for it).
    wait_until(lambda: widgets.count(name) >= 2, message="handled work committed")
    eventlet.sleep(0.3)
    assert widgets.count(name) == 2


def widgets_publisher(rabbit_config):
    """Publishes straight to the widgets exchange, as a redelivery would arrive."""
    from nameko.amqp.publish import Publisher
    from nameko.standalone.events import get_event_exchange

    exchange = get_event_exchange("widgets", rabbit_config)
    return Publisher(
        rabbit_config["AMQP_URI"],
        exchange=exchange,
        declare=[exchange],
        serializer="json",
    )


def test_duplicate_delivery_of_one_event_is_handled_once(widgets, rabbit_config):
    name = f"dup-{uuid.uuid4().hex[:8]}"
    envelope = new_envelope("widgets", "widget_created", {"name": name})
    publisher = widgets_publisher(rabbit_config)
    publisher.publish(envelope, routing_key="widget_created")
    publisher.publish(envelope, routing_key="widget_created")
    wait_until(lambda: attempts.get(name, 0) >= 1, message="first delivery")
    # Wait for a later event to be sure the duplicate was consumed too.
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    widgets.create(marker)
    wait_until(
        lambda: any(e["payload"]["name"] == marker for e in received),
        message="marker event",
    )
    assert [str(e["event_id"]) for e in received].count(envelope["event_id"]) == 1
    assert widgets.count(name) == 1


LISTENER_QUEUE = "evt-widgets-widget_created--widget_listener.handle_widget_created"


def queue_state(rabbit_manager, rabbit_config):
    return rabbit_manager.get_queue(rabbit_config["vhost"], LISTENER_QUEUE)


def wait_queue_empty(rabbit_manager, rabbit_config):
    # The management API's counts lag the broker by its stats interval.
    wait_until(
        lambda: queue_state(rabbit_manager, rabbit_config).get("messages") == 0,
        timeout=20,
        interval=0.5,
        message="listener queue empty",
    )


def parked(db_query, handler_suffix="handle_widget_created"):
    return db_query("identity")(
        "SELECT * FROM dead_events WHERE handler LIKE %s ORDER BY id",
        (f"%{handler_suffix}",),
    )


def test_malformed_event_is_parked_at_once_not_requeued(
    widgets, rabbit_config, rabbit_manager, db_query
):
    publisher = widgets_publisher(rabbit_config)
    bad_id = str(uuid.uuid4())
    publisher.publish(
        {"event_id": bad_id, "payload": {"name": "no-envelope"}},
        routing_key="widget_created",
    )
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    widgets.create(marker)
    wait_until(
        lambda: any(e["payload"]["name"] == marker for e in received),
        message="marker after malformed event",
    )
    assert "no-envelope" not in attempts  # the handler itself never ran
    rows = wait_until(
        lambda: [r for r in parked(db_query) if r["event_id"] == bad_id],
        message="malformed event parked",
    )
    assert len(rows) == 1
    assert rows[0]["reason"] == "malformed" and rows[0]["attempts"] == 1
    assert rows[0]["body"]["payload"] == {"name": "no-envelope"}
    assert rows[0]["queue"] == LISTENER_QUEUE
    # Acknowledged, not requeued: nothing is left on the queue or unacked.
    wait_queue_empty(rabbit_manager, rabbit_config)
    assert queue_state(rabbit_manager, rabbit_config)["messages_unacknowledged"] == 0


def test_poison_event_is_parked_after_n_attempts_and_replays_once_fixed(
    widgets, rabbit_config, rabbit_manager, db_query, make_config, caplog
):
    global handler_fixed
    from prometheus_client import REGISTRY

    from services.common.plumbing.dead_events import list_parked, replay

    def parked_metric():
        return (
            REGISTRY.get_sample_value(
                "events_parked_total",
                {
                    "service": "widget_listener",
                    "handler": "handle_widget_created",
                    "reason": "failing",
                },
            )
            or 0
        )

    metric_before = parked_metric()
    poison = f"poison-{uuid.uuid4().hex[:8]}"
    good = f"good-{uuid.uuid4().hex[:8]}"
    widgets.create(poison)
    widgets.create(good)
    # The good event behind the poison one is handled.
    wait_until(
        lambda: any(e["payload"]["name"] == good for e in received),
        message="the good event behind the poison one",
    )
    rows = wait_until(
        lambda: [r for r in parked(db_query) if r["body"]["payload"]["name"] == poison],
        message="poison event parked",
    )
    assert len(rows) == 1 and rows[0]["reason"] == "failing"
    assert rows[0]["attempts"] == 3
    assert "RuntimeError" in rows[0]["error"]
    wait_queue_empty(rabbit_manager, rabbit_config)
    # Exactly three deliveries (EVENT_MAX_ATTEMPTS), then never again.
    assert attempts[poison] == 3
    assert widgets.count(poison) == 1  # the producer's row; every try rolled back
    assert parked_metric() == metric_before + 1
    assert any(
        "ALERT" in r.getMessage() and str(rows[0]["id"]) in r.getMessage()
        for r in caplog.records
    )
    db_uri = make_config("identity")["DB_URI"]
    assert [r["id"] for r in list_parked(db_uri)] == [
        r["id"] for r in parked(db_query) if r["replayed_at"] is None
    ]

    handler_fixed = True  # the fix is deployed; ops replay the parked event
    assert replay(db_uri, rabbit_config["AMQP_URI"], [rows[0]["id"]]) == [rows[0]["id"]]
    wait_until(
        lambda: any(e["payload"]["name"] == poison for e in received),
        message="replayed event handled",
    )
    assert attempts[poison] == 4
    # The handler's row is committed after it returns: wait for it, then
    # make sure it is there once (producer's row + the listener's).
    wait_until(lambda: widgets.count(poison) == 2, message="replayed work committed")
    eventlet.sleep(0.3)
    assert widgets.count(poison) == 2
    # Replayed rows leave the waiting list and are not replayed twice.
    assert rows[0]["id"] not in [r["id"] for r in list_parked(db_uri)]
    assert replay(db_uri, rabbit_config["AMQP_URI"], [rows[0]["id"]]) == []
