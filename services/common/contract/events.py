"""The event bus contract: event names, the envelope, and the payload schema
of every event (each issue adds the events it introduces). Pure: the outbox
(``Store.add_event``) validates what it stores against these schemas, and
``services.common.plumbing.handlers.event_handler`` validates what it
receives; an event is published to ``<source>.events`` with the event type
as routing key.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import uuid
from datetime import datetime, timezone

from marshmallow import EXCLUDE, Schema, fields, validate

from services.common.contract.fields import UtcDateTime
from services.common.contract.vocabulary import (
    AUTH_INFO_FIELDS,
    MAX_BALANCE_FEN,
    OWNED_COURSE_KINDS,
)

__all__ = ["EnvelopeSchema", "PAYLOAD_SCHEMAS", "new_envelope", "payload_schema"]


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


@payload_schema("account_registered")
class AccountRegisteredPayload(Schema):
    """A new account (no consumer inside the platform yet; the outbox keeps
    the contract for the systems that will listen)."""

    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)
    passport_id = fields.String(required=True)
    status = fields.String(required=True)


@payload_schema("phone_changed")
class PhoneChangedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)
    phone_masked = fields.String(required=True)


@payload_schema("email_changed")
class EmailChangedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)
    email_masked = fields.String(required=True)


@payload_schema("guardian_verified")
class GuardianVerifiedPayload(Schema):
    class Meta:
        unknown = EXCLUDE

    account_id = fields.String(required=True)


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
