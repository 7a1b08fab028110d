"""The event bus contract: event names, the envelope, payload schemas, and
``event_handler``, the idempotent handler decorator every service uses.

An event is published by the outbox relay (``services.common.outbox``) to
``<source>.events`` with the event type as routing key. Handlers may see an
event twice or out of order; ``event_handler`` absorbs duplicates by
recording ``(handler, event_id)`` in the same transaction as the handler's
work, has Nameko requeue the message when the handler crashes, and parks it
in ``dead_events`` once it has failed ``EVENT_MAX_ATTEMPTS`` times.
"""

import functools
import logging
import uuid
from datetime import datetime, timezone

import eventlet
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from nameko.events import event_handler as nameko_event_handler

from services.common.db import retry_conflicts
from services.common.errors import DeadlineExceeded, ServiceUnavailable
from services.common.fields import UtcDateTime
from services.common.metrics import EVENTS_PARKED
from services.common.vocabulary import (
    AUTH_INFO_FIELDS,
    MAX_BALANCE_FEN,
    OWNED_COURSE_KINDS,
)

__all__ = ["EnvelopeSchema", "PAYLOAD_SCHEMAS", "event_handler", "new_envelope"]

log = logging.getLogger(__name__)


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True)
    source = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    payload = fields.Dict(required=True)


def new_envelope(source, event_type, payload, event_id=None, occurred_at=None):
    """The envelope every event travels in (what ``EnvelopeSchema`` loads)."""
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": event_type,
        "source": source,
        "occurred_at": (occurred_at or datetime.now(timezone.utc)).isoformat(),
        "payload": payload,
    }


# event_type -> payload schema; each issue adds the events it introduces.
PAYLOAD_SCHEMAS = {}


def payload_schema(event_type):
    """Register a payload schema class for ``event_type`` (a class decorator)."""

    def register(schema_cls):
        PAYLOAD_SCHEMAS[event_type] = schema_cls
        return schema_cls

    return register


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
      ``python -m services.common.dead_events``.
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
                "attempt(s): %s); replay with python -m services.common.dead_events",
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


# -- identity ------------------------------------------------------------------
# Only ids and masked values: events are not a side door to personal data.


@payload_schema("sessions_revoked")
class SessionsRevokedPayload(Schema):
    """Every gateway instance drops its cached sessions of ``account_id``
    (broadcast); ``session_ids`` empty means all of them."""

    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)
    session_ids = fields.List(fields.String(), load_default=list)
    reason = fields.String(required=True)


@payload_schema("roles_changed")
class RolesChangedPayload(Schema):
    """Every gateway instance drops its cached principals of the account, so
    a granted or withdrawn role counts from the next request (broadcast)."""

    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)


@payload_schema("phone_taken_over")
class PhoneTakenOverPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)
    by_account_id = fields.String(required=True)
    phone_masked = fields.String(required=True)
    notify_email = fields.Boolean(required=True)


@payload_schema("notice_requested")
class NoticeRequestedPayload(Schema):
    """A security notice identity wrote with a change; its destination stays
    sealed in identity's ``notices`` table, never on the bus."""

    class Meta:
        unknown = EXCLUDE

    notice_id = fields.Integer(required=True)
    account_id = fields.String(required=True)
    kind = fields.String(required=True)


@payload_schema("account_deactivated")
class AccountDeactivatedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)
    passport_id = fields.String(required=True)


@payload_schema("auth_info_changed")
class AuthInfoChangedPayload(Schema):
    """Which fields changed (names only) and whether registry verification
    went back to pending."""

    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)
    fields_changed = fields.List(fields.String(), required=True)
    school_code = fields.String(allow_none=True)
    registry_reset = fields.Boolean(required=True)


# -- registry_sync (consumed by identity's projection) --------------------------
# Pushes may arrive twice or out of order: ``as_of`` orders them, the newest wins.


@payload_schema("enrollment_changed")
class EnrollmentChangedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    school_code = fields.String(required=True, validate=validate.Length(1, 32))
    student_number = fields.String(required=True, validate=validate.Length(1, 64))
    course_id = fields.String(required=True, validate=validate.Length(1, 64))
    term = fields.String(required=True, validate=validate.Length(1, 32))
    kind = fields.String(
        required=True, validate=validate.OneOf(("school_arranged", "free_elective"))
    )
    exam_ended = fields.Boolean(required=True)
    exam_ends_at = UtcDateTime(load_default=None, allow_none=True)
    grades_published = fields.Boolean(required=True)
    makeup_pending = fields.Boolean(load_default=False)
    dropped = fields.Boolean(load_default=False)
    as_of = UtcDateTime(required=True)


@payload_schema("change_window_changed")
class ChangeWindowChangedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    school_code = fields.String(required=True, validate=validate.Length(1, 32))
    window_id = fields.String(required=True, validate=validate.Length(1, 64))
    fields_ = fields.List(
        fields.String(validate=validate.OneOf(AUTH_INFO_FIELDS)),
        required=True,
        data_key="fields",
        validate=validate.Length(min=1),
    )
    starts_at = UtcDateTime(required=True)
    ends_at = UtcDateTime(required=True)
    cancelled = fields.Boolean(load_default=False)
    as_of = UtcDateTime(required=True)


@payload_schema("registry_verification_changed")
class RegistryVerificationChangedPayload(Schema):
    """An account's registry verification moved (submitted, re-checked when
    roster data arrived, refreshed or linked by a school admin, or its
    record went inactive). identity keeps the newest by ``as_of``; on
    ``passed`` the school, student number and class are the registry's."""

    class Meta:
        unknown = EXCLUDE

    account_id = fields.UUID(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(("pending", "passed", "failed"))
    )
    code = fields.String(load_default=None, allow_none=True)
    school_code = fields.String(required=True, validate=validate.Length(1, 32))
    student_number = fields.String(required=True, validate=validate.Length(1, 64))
    class_name = fields.String(load_default=None, allow_none=True)
    as_of = UtcDateTime(required=True)


@payload_schema("correction_answered")
class CorrectionAnsweredPayload(Schema):
    """The school acted on a student's correction request (its roster
    changed, or an admin refreshed or linked): the outcome reaches the
    student's inbox (recovery owns the inbox)."""

    class Meta:
        unknown = EXCLUDE

    account_id = fields.UUID(required=True)
    school_code = fields.String(required=True, validate=validate.Length(1, 32))
    status = fields.String(
        required=True, validate=validate.OneOf(("pending", "passed", "failed"))
    )
    code = fields.String(load_default=None, allow_none=True)
    as_of = UtcDateTime(required=True)


# -- recovery (issue #10) ------------------------------------------------------------
@payload_schema("phone_recovery_completed")
class PhoneRecoveryCompletedPayload(Schema):
    """Two classmates vouched: identity takes the hand-over
    (``recovery.recovery_handover``) and applies it once."""

    class Meta:
        unknown = EXCLUDE

    recovery_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)


@payload_schema("phone_recovery_applied")
class PhoneRecoveryAppliedPayload(Schema):
    """identity applied a hand-over: recovery wipes the secrets it kept."""

    class Meta:
        unknown = EXCLUDE

    recovery_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)


@payload_schema("phone_recovery_reverted")
class PhoneRecoveryRevertedPayload(Schema):
    """ "Not me" inside the cancel window: identity locks and reverts."""

    class Meta:
        unknown = EXCLUDE

    recovery_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)


@payload_schema("recovery_dispute_decided")
class RecoveryDisputeDecidedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    review_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)
    unlock = fields.Boolean(required=True)
    decided_by = fields.String(required=True, validate=validate.Length(1, 64))


@payload_schema("duplicate_resolved")
class DuplicateResolvedPayload(Schema):
    """A reviewer or a classmate settled a duplicate ID for ``account_id``:
    identity moves the ID binding to it (once per ``resolution_id``)."""

    class Meta:
        unknown = EXCLUDE

    resolution_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)
    via = fields.String(required=True, validate=validate.Length(1, 80))


@payload_schema("duplicate_move_scheduled")
class DuplicateMoveScheduledPayload(Schema):
    """Classmates vouched for ``account_id``: the ID number moves to it from
    ``holder_id`` at ``effective_at`` unless the holder says "not me".
    identity tells the holder on every bound channel (the link comes from
    ``recovery.duplicate_move_notice``, never through the bus)."""

    class Meta:
        unknown = EXCLUDE

    resolution_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)
    holder_id = fields.UUID(required=True)
    effective_at = UtcDateTime(required=True)


@payload_schema("id_binding_moved")
class IdBindingMovedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)
    from_account_id = fields.String(load_default=None, allow_none=True)


@payload_schema("roster_imported")
class RosterImportedPayload(Schema):
    """A OneRoster import landed (registry_sync tells itself: its handler
    re-checks the verifications the import may settle)."""

    class Meta:
        unknown = EXCLUDE

    school_code = fields.String(required=True, validate=validate.Length(1, 32))
    import_id = fields.UUID(required=True)
    since = UtcDateTime(required=True)


# -- wallet and course systems (consumed by identity for deactivation) ----------


@payload_schema("wallet_balance_changed")
class WalletBalanceChangedPayload(Schema):
    """知点 balance in fen (1/100), an integer: no floats for money."""

    class Meta:
        unknown = EXCLUDE

    account_id = fields.UUID(required=True)
    balance_fen = fields.Integer(
        required=True, validate=validate.Range(min=0, max=MAX_BALANCE_FEN)
    )
    as_of = UtcDateTime(required=True)


class OwnedCourse(Schema):
    course_id = fields.String(required=True, validate=validate.Length(1, 64))
    kind = fields.String(required=True, validate=validate.OneOf(OWNED_COURSE_KINDS))


@payload_schema("course_ownership_changed")
class CourseOwnershipChangedPayload(Schema):
    """The whole list of courses the account owns now (not a delta)."""

    class Meta:
        unknown = EXCLUDE

    account_id = fields.UUID(required=True)
    owned = fields.List(fields.Nested(OwnedCourse), required=True)
    as_of = UtcDateTime(required=True)
