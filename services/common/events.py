"""The event bus contract: event names, the envelope, payload schemas, and
``event_handler``, the idempotent handler decorator every service uses.

An event is published by the outbox relay (``services.common.outbox``) to
``<source>.events`` with the event type as routing key. Handlers may see an
event twice or out of order; ``event_handler`` absorbs duplicates by
recording ``(handler, event_id)`` in the same transaction as the handler's
work, and has Nameko requeue the message when the handler crashes.
"""

import functools
import logging

from marshmallow import EXCLUDE, Schema, ValidationError, fields
from nameko.events import event_handler as nameko_event_handler

__all__ = ["EnvelopeSchema", "PAYLOAD_SCHEMAS", "event_handler"]

log = logging.getLogger(__name__)


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True)
    source = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    payload = fields.Dict(required=True)


# event_type -> payload schema; each issue adds the events it introduces.
PAYLOAD_SCHEMAS = {}


def payload_schema(event_type):
    """Register a payload schema class for ``event_type`` (a class decorator)."""

    def register(schema_cls):
        PAYLOAD_SCHEMAS[event_type] = schema_cls
        return schema_cls

    return register


def event_handler(source, event_type, store_attr="db", **options):
    """``@event_handler(source, event_type)`` for a method ``(self, payload, envelope)``.

    The envelope and payload are validated; a malformed event is logged and
    dropped (it would fail the same way on every redelivery). The handler's
    store transaction is committed here, after the handler returns.
    """

    def decorator(fn):
        handler_name = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def wrapper(self, body):
            try:
                envelope = EnvelopeSchema().load(body)
                schema_cls = PAYLOAD_SCHEMAS.get(event_type)
                payload = (
                    schema_cls().load(envelope["payload"])
                    if schema_cls
                    else envelope["payload"]
                )
            except ValidationError as exc:
                log.error(
                    "dropping malformed %s.%s event: %s",
                    source,
                    event_type,
                    sorted(exc.messages),
                )
                return None
            store = getattr(self, store_attr)
            if not store.claim_event(handler_name, str(envelope["event_id"])):
                log.info(
                    "event %s already handled by %s", envelope["event_id"], handler_name
                )
                return None
            result = fn(self, payload, envelope)
            store.commit()
            return result

        options.setdefault("requeue_on_error", True)
        return nameko_event_handler(source, event_type, **options)(wrapper)

    return decorator


# -- verification ------------------------------------------------------------
# Codes themselves never travel on the bus; destinations only masked.


@payload_schema("code_issued")
class CodeIssuedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    code_id = fields.Integer(required=True)
    channel = fields.String(required=True)
    purpose = fields.String(required=True)
    account_id = fields.String(allow_none=True)
    destination_masked = fields.String(required=True)
    expires_at = fields.AwareDateTime(required=True)


@payload_schema("code_verified")
class CodeVerifiedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    purpose = fields.String(required=True)
    account_id = fields.String(allow_none=True)
    destination_masked = fields.String(required=True)


@payload_schema("code_delivery_failed")
class CodeDeliveryFailedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    delivery_id = fields.Integer(required=True)
    channel = fields.String(required=True)
    purpose = fields.String(required=True)
    account_id = fields.String(allow_none=True)
    destination_masked = fields.String(required=True)
    attempts = fields.Integer(required=True)
    reason = fields.String(allow_none=True)
