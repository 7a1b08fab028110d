"""Relays outbox rows to RabbitMQ, so an event leaves only after its change
has committed, and leaves at least once even if the service crashes.

Rows are taken with ``FOR UPDATE SKIP LOCKED`` so several instances of a
service relay side by side without sending a row twice in the normal case;
a crash between publish and ``sent_at`` sends it again, which consumers
absorb by remembering event ids (``Store.claim_event``).

Events go to the service's Nameko event exchange (``<service>.events``)
with the event type as routing key, so plain ``@event_handler(service,
event_type)`` entrypoints receive them. The body is the envelope::

    {"event_id", "event_type", "source", "occurred_at", "payload"}

A service runs its relay by declaring the provider beside its database::

    db = Database(IdentityStore)
    outbox = Outbox()  # relays what ``db``'s stores queued with add_event
"""

import logging
import time

from nameko.amqp.publish import Publisher
from nameko.constants import AMQP_URI_CONFIG_KEY, HEADER_PREFIX
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from prometheus_client import Gauge

from services.common.contract.events import new_envelope
from services.common.plumbing.db import RELAX_DURABILITY
from services.common.plumbing.poller import Poller
from services.common.plumbing.providers import sibling

__all__ = ["Outbox", "OutboxRelay"]

log = logging.getLogger(__name__)

BATCH = 100

CLAIM_UNSENT_SQL = """
SELECT id, event_id, event_type, payload, request_id, created_at
  FROM outbox
 WHERE sent_at IS NULL
 ORDER BY id
 LIMIT %(batch)s
   FOR UPDATE SKIP LOCKED
"""
MARK_SENT_SQL = "UPDATE outbox SET sent_at = now() WHERE id = ANY(%(ids)s)"
PURGE_SENT_SQL = "DELETE FROM outbox WHERE sent_at < now() - interval '1 day'"
BACKLOG_SQL = """
SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)
  FROM outbox WHERE sent_at IS NULL
"""
# How often the relay measures its backlog for the metrics below.
BACKLOG_EVERY_SECONDS = 5.0

# An outbox that does not drain (broker unreachable, relay stuck) is what
# the OutboxBacklog alert watches: rows waiting and the oldest one's age.
OUTBOX_UNSENT = Gauge(
    "outbox_unsent_events", "Outbox rows not yet published", ["service"]
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "outbox_oldest_unsent_age_seconds",
    "Age of the oldest outbox row not yet published",
    ["service"],
)


class OutboxRelay:
    """Drains the outbox after each commit (``wake``) and on a timer."""

    def __init__(self, pool, config, service_name, interval=1.0):
        self.pool = pool
        self.service_name = service_name
        exchange = get_event_exchange(service_name, config)
        self.publisher = Publisher(
            config[AMQP_URI_CONFIG_KEY],
            exchange=exchange,
            declare=[exchange],
            use_confirms=True,  # a row is marked sent only once the broker has it
            serializer="json",
        )
        self.poller = Poller(f"{service_name} outbox relay", self.drain, interval)
        self.start, self.stop, self.wake = (
            self.poller.start,
            self.poller.stop,
            self.poller.wake,
        )
        self._drains = 0
        self._next_backlog = 0.0

    def drain(self):
        """Publish every unsent row; returns how many were published."""
        published = 0
        while True:
            count = self._relay_batch()
            published += count
            if count < BATCH:
                break
        self._drains += 1
        if self._drains % 500 == 0:
            self._purge()
        if time.monotonic() >= self._next_backlog:
            self._measure_backlog()
        return published

    def _relay_batch(self):
        conn = self.pool.getconn()
        try:
            with conn.cursor() as cur:
                # If "sent" is lost in a crash the rows go out again, which
                # consumers absorb; not worth an fsync per batch.
                cur.execute(RELAX_DURABILITY)
                cur.execute(CLAIM_UNSENT_SQL, {"batch": BATCH})
                rows = cur.fetchall()
                for row in rows:
                    self._publish(row)
                if rows:
                    cur.execute(MARK_SENT_SQL, {"ids": [r[0] for r in rows]})
            conn.commit()
            return len(rows)
        finally:
            self.pool.putconn(conn)

    def _publish(self, row):
        _, event_id, event_type, payload, request_id, created_at = row
        envelope = new_envelope(
            self.service_name, event_type, payload, event_id, created_at
        )
        headers = {}
        if request_id:  # so the consumer's log lines carry the same id
            headers[f"{HEADER_PREFIX}.request_id"] = request_id
        self.publisher.publish(envelope, routing_key=event_type, headers=headers)

    def _measure_backlog(self):
        self._next_backlog = time.monotonic() + BACKLOG_EVERY_SECONDS
        conn = self.pool.getconn()
        try:
            with conn.cursor() as cur:
                cur.execute(BACKLOG_SQL)
                unsent, oldest = cur.fetchone()
            conn.commit()
        finally:
            self.pool.putconn(conn)
        OUTBOX_UNSENT.labels(self.service_name).set(unsent)
        OUTBOX_OLDEST_SECONDS.labels(self.service_name).set(float(oldest))

    def _purge(self):
        conn = self.pool.getconn()
        try:
            with conn.cursor() as cur:
                cur.execute(PURGE_SENT_SQL)
            conn.commit()
        finally:
            self.pool.putconn(conn)


class Outbox(DependencyProvider):
    """Runs the service's outbox relay on the pool of its ``Database``
    provider (the attribute ``database_attr``), woken by every commit that
    queued an event. Config: ``OUTBOX_POLL_SECONDS`` (default 1).

    Nothing is injected into workers: stores queue events themselves
    (``Store.add_event``) in the transaction of the change."""

    def __init__(self, database_attr="db"):
        self.database_attr = database_attr
        self.relay = None

    def setup(self):
        database = sibling(self, self.database_attr)
        self.database = database
        database.on_commit = self.wake
        database.on_stop.append(self.stop)

    def start(self):
        # After every setup: the Database provider's pool exists by now.
        config = self.container.config
        self.relay = OutboxRelay(
            self.database.pool,
            config,
            self.container.service_name,
            interval=float(config.get("OUTBOX_POLL_SECONDS", 1.0)),
        )
        self.relay.start()

    def wake(self):
        if self.relay is not None:
            self.relay.wake()

    def stop(self):
        if self.relay is not None:
            self.relay.stop()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        return None
