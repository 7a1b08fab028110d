"""``event_handler``: the idempotent handler decorator every service uses.

Handlers may see an event twice or out of order; ``event_handler`` absorbs
duplicates by recording ``(handler, event_id)`` in the same transaction as
the handler's work, has Nameko requeue the message when the handler crashes,
and parks it in ``dead_events`` once it has failed ``EVENT_MAX_ATTEMPTS``
times. The envelope and payload schemas are the contract's
(``services.common.contract.events``).
"""

import functools
import logging

import eventlet
from marshmallow import ValidationError

from services.common.contract.errors import DeadlineExceeded, ServiceUnavailable
from services.common.contract.events import PAYLOAD_SCHEMAS, EnvelopeSchema
from services.common.plumbing.db import retry_conflicts
from services.common.plumbing.metrics import EVENTS_PARKED
from services.common.plumbing.queues import TypedEventHandler

__all__ = ["RELIABLE_HANDLERS", "event_handler"]

log = logging.getLogger(__name__)


def _handler_queue(source, event_type, service_name, method_name):
    """The queue Nameko gives a service-pool ``event_handler`` (replay target)."""
    return f"evt-{source}-{event_type}--{service_name}.{method_name}"


# How long a handler waits before requeueing an event it could not handle
# because a dependency was away; keeps a redelivery loop from spinning.
TRANSIENT_REQUEUE_PAUSE_SECONDS = 1.0


# Every reliable handler declared with ``event_handler`` below:
# ``{handler_name: (source, event_type)}``. The fault tier reads it to check
# that each published event was handled exactly once by each of its handlers.
RELIABLE_HANDLERS = {}


def event_handler(source, event_type, store_attr="db", **options):
    """``@event_handler(source, event_type)`` for a method ``(self, payload, envelope)``.

    * The envelope and payload are validated; a malformed event is parked at
      once (it would fail the same way on every redelivery).
    * A redelivery of an event already handled is absorbed (``claim_event``
      in the same transaction as the handler's work), and the store's
      transaction is committed here, after the handler returns.
    * A database conflict or a lost connection is retried in place
      (``retry_conflicts``); when the database or a called service stays
      away the event is requeued after a pause, uncounted.
    * Any other failure rolls the work back and counts an attempt; the
      message is requeued until the ``EVENT_MAX_ATTEMPTS``-th failure, when
      it is parked in ``dead_events`` with an ``ALERT`` log line and the
      ``events_parked_total`` metric, and acknowledged so the messages
      behind it keep flowing. Ops replay it with
      ``python -m services.common.plumbing.dead_events``.
    """

    def decorator(fn):
        handler_name = f"{fn.__module__}.{fn.__qualname__}"
        RELIABLE_HANDLERS[handler_name] = (source, event_type)

        def handle_once(self, envelope, payload):
            store = getattr(self, store_attr)
            if not store.claim_event(handler_name, str(envelope["event_id"])):
                log.info(
                    "event %s already handled by %s", envelope["event_id"], handler_name
                )
                return None
            result = fn(self, payload, envelope)
            store.commit()
            return result

        handle_once.__qualname__ = fn.__qualname__
        handle_once = retry_conflicts(handle_once)

        def park(self, store, body, event_id, reason, error, attempts):
            dead_id = store.park_event(
                handler=handler_name,
                queue=_handler_queue(source, event_type, self.name, fn.__name__),
                source=source,
                event_type=event_type,
                event_id=event_id,
                body=body,
                reason=reason,
                error=error,
                attempts=attempts,
            )
            EVENTS_PARKED.labels(self.name, fn.__name__, reason).inc()
            log.error(
                "ALERT %s.%s event %s parked as dead event %s (%s after %d "
                "attempt(s): %s); replay with python -m services.common.plumbing.dead_events",
                source,
                event_type,
                event_id,
                dead_id,
                reason,
                attempts,
                error,
            )

        @functools.wraps(fn)
        def wrapper(self, body):
            store = getattr(self, store_attr)
            try:
                envelope = EnvelopeSchema().load(body)
                schema_cls = PAYLOAD_SCHEMAS.get(event_type)
                payload = (
                    schema_cls().load(envelope["payload"])
                    if schema_cls
                    else envelope["payload"]
                )
            except ValidationError as exc:
                event_id = body.get("event_id") if isinstance(body, dict) else None
                park(
                    self,
                    store,
                    body if isinstance(body, dict) else {"raw": body},
                    str(event_id) if event_id is not None else None,
                    "malformed",
                    f"invalid fields: {sorted(exc.messages)}",
                    1,
                )
                return None
            event_id = str(envelope["event_id"])
            try:
                return handle_once(self, envelope, payload)
            except (ServiceUnavailable, DeadlineExceeded) as exc:
                # The database or a service it calls is away (a restart, a
                # deploy): not the event's fault, so no attempt is counted and
                # nothing is parked; after a pause it goes back to the queue.
                log.warning(
                    "%s: event %s requeued, a dependency is unavailable (%s)",
                    handler_name,
                    event_id,
                    exc.code,
                )
                eventlet.sleep(TRANSIENT_REQUEUE_PAUSE_SECONDS)
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                attempts = store.count_event_failure(handler_name, event_id, error)
                if attempts < store.event_max_attempts:
                    log.warning(
                        "%s failed on event %s (attempt %d of %d): %s",
                        handler_name,
                        event_id,
                        attempts,
                        store.event_max_attempts,
                        type(exc).__name__,
                    )
                    raise  # Nameko requeues it
                park(self, store, body, event_id, "failing", error, attempts)
                return None

        options.setdefault("requeue_on_error", True)
        return TypedEventHandler.decorator(source, event_type, **options)(wrapper)

    return decorator
