"""The recovery surface's public HTTP shapes (``recovery.py``)."""

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from services.common.contract.fields import (
    StrictBoolean,
)
from services.common.rules.roles import SCHOOL_CODE_PATTERN
from services.gateway.schemas import (
    NEW_PASSWORD,
    NOT_BLANK,
    RECOVERY_STATUSES,
    ReviewSchema,
    _phone,
)


class PhoneRecoveryStartSchema(Schema):
    school_code = fields.String(
        required=True,
        validate=validate.Regexp(SCHOOL_CODE_PATTERN),
        metadata={"example": "BJ101"},
    )
    student_number = fields.String(
        required=True,
        validate=[validate.Length(1, 64), NOT_BLANK],
        metadata={"example": "2024001"},
    )
    name = fields.String(
        required=True,
        validate=[validate.Length(1, 64), NOT_BLANK],
        metadata={"example": "张三"},
    )


class PhoneRecoveryStartedSchema(Schema):
    recovery_id = fields.UUID(required=True)
    recovery_token = fields.String(
        required=True,
        metadata={
            "description": "the flow's secret: send it as X-Recovery-Token on "
            "the next steps; shown once"
        },
    )
    old_phone_hint = fields.String(required=True, metadata={"example": "138****78"})
    expires_at = fields.AwareDateTime(required=True)


class NewPhoneSchema(Schema):
    old_phone = fields.String(
        required=True,
        validate=[validate.Length(1, 32), NOT_BLANK],
        metadata={"description": "the old bound phone, typed in full"},
    )
    new_phone = _phone(required=True)
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^\d{6}$"),
        metadata={"example": "123456"},
    )
    new_password = fields.String(required=True, validate=NEW_PASSWORD, load_only=True)


class ShareLinkSchema(Schema):
    share_url = fields.String(required=True)
    share_token = fields.String(required=True)
    vouches = fields.Integer(required=True)
    vouches_needed = fields.Integer(required=True)
    expires_at = fields.AwareDateTime(required=True)
    new_phone_masked = fields.String(required=True)


class PhoneRecoveryProgressSchema(Schema):
    recovery_id = fields.UUID(required=True)
    status = fields.String(required=True, validate=validate.OneOf(RECOVERY_STATUSES))
    vouches = fields.Integer(required=True)
    vouches_needed = fields.Integer(required=True)
    expires_at = fields.AwareDateTime(required=True)
    old_phone_hint = fields.String(required=True)
    completed_at = fields.AwareDateTime(allow_none=True)


class VouchContextSchema(PhoneRecoveryProgressSchema):
    requester_name = fields.String(required=True)
    requester_class = fields.String(allow_none=True)
    new_phone_masked = fields.String(required=True)
    is_requester = fields.Boolean(required=True)
    already_vouched = fields.Boolean(required=True)
    warning_zh = fields.String(required=True)
    warning_en = fields.String(required=True)


class VouchResultSchema(Schema):
    recovery_id = fields.UUID(required=True)
    vouches = fields.Integer(required=True)
    vouches_needed = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(RECOVERY_STATUSES))


class NotMeResultSchema(Schema):
    recovery_id = fields.UUID(required=True)
    status = fields.String(required=True)


class IdNotMeResultSchema(Schema):
    resolution_id = fields.UUID(required=True)
    status = fields.String(
        required=True,
        metadata={"description": "disputed: the move stopped, a reviewer decides"},
    )


# -- recovery: password reset ---------------------------------------------------------
class ResetMethodSchema(Schema):
    method = fields.String(
        required=True, validate=validate.OneOf(("sms", "email", "questions"))
    )
    target = fields.String(metadata={"description": "masked phone or address"})
    questions = fields.List(fields.String())


class ResetMethodsSchema(Schema):
    methods = fields.List(fields.Nested(ResetMethodSchema), required=True)
    alternatives = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "where to go with no method left"},
    )


class ResetCodeRequestSchema(Schema):
    login = fields.String(required=True, validate=[validate.Length(1, 254), NOT_BLANK])
    method = fields.String(required=True, validate=validate.OneOf(("sms", "email")))


class ResetCodeSentSchema(Schema):
    method = fields.String(required=True)
    target = fields.String(required=True)
    resend_after = fields.Integer(required=True)


class PasswordResetSchema(Schema):
    """`code` for `sms` / `email`, three `answers` for `questions`."""

    openapi_extra = {
        "oneOf": [
            {
                "required": ["code"],
                "properties": {"method": {"enum": ["sms", "email"]}},
            },
            {
                "required": ["answers"],
                "properties": {"method": {"enum": ["questions"]}},
            },
        ]
    }

    login = fields.String(required=True, validate=[validate.Length(1, 254), NOT_BLANK])
    method = fields.String(
        required=True, validate=validate.OneOf(("sms", "email", "questions"))
    )
    code = fields.String(validate=validate.Regexp(r"^\d{6}$"))
    answers = fields.List(
        fields.String(validate=[validate.Length(1, 128), NOT_BLANK]),
        validate=validate.Length(3, 3),
    )
    new_password = fields.String(required=True, validate=NEW_PASSWORD, load_only=True)

    @validates_schema
    def _proof_for_method(self, data, **kwargs):
        # Exactly the published oneOf: the proof the method needs must be
        # there; anything else given beside it is ignored.
        if data.get("method") == "questions":
            if "answers" not in data:
                raise ValidationError("three answers are required", "answers")
        elif "code" not in data:
            raise ValidationError("a code is required", "code")


class PasswordResetDoneSchema(Schema):
    reset = fields.Boolean(required=True)
    logged_in = fields.Boolean(required=True)


class AssistanceRequestSchema(Schema):
    classmate_name = fields.String(
        required=True, validate=[validate.Length(1, 64), NOT_BLANK]
    )
    classmate_phone = _phone(required=True)


class AssistanceCreatedSchema(Schema):
    request_id = fields.UUID(required=True)
    status = fields.String(required=True)
    remaining_today = fields.Integer(required=True)


class AssistanceItemSchema(Schema):
    request_id = fields.UUID(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(("open", "approved", "declined"))
    )
    created_at = fields.AwareDateTime(required=True)
    answered_at = fields.AwareDateTime(allow_none=True)


class DuplicateMoveSchema(Schema):
    state = fields.String(
        required=True,
        metadata={"description": "holding, applied, disputed or cancelled"},
    )
    effective_at = fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "when a holding move takes effect undisputed"},
    )


class DuplicateStatusSchema(Schema):
    account_status = fields.String(required=True)
    resolved = fields.Boolean(required=True)
    move = fields.Nested(DuplicateMoveSchema, allow_none=True)
    reviews = fields.List(fields.Nested(ReviewSchema), required=True)
    assistance_requests = fields.List(
        fields.Nested(AssistanceItemSchema), required=True
    )
    assistance_remaining_today = fields.Integer(required=True)


class InboxMessageSchema(Schema):
    message_id = fields.UUID(required=True)
    kind = fields.String(
        required=True,
        metadata={
            "description": "assistance_request, assistance_outcome, review_outcome, "
            "vouch_request, phone_recovery_outcome, correction_outcome (params: "
            "school_code, status, code — the school acted on a correction request), "
            "duplicate_move (params: state holding/applied/disputed/cancelled, side "
            "requester/holder, effective_at while holding, else at)"
        },
    )
    params = fields.Dict(required=True)
    needs_answer = fields.Boolean(required=True)
    answer = fields.Boolean(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    read = fields.Boolean(required=True)


class InboxPageSchema(Schema):
    items = fields.List(fields.Nested(InboxMessageSchema), required=True)
    total = fields.Integer(required=True)
    unread = fields.Integer(required=True)
    to_answer = fields.Integer(required=True)
    next_offset = fields.Integer(allow_none=True)


class InboxAnswerSchema(Schema):
    approve = StrictBoolean(required=True)


class InboxAnsweredSchema(Schema):
    message_id = fields.UUID(required=True)
    answer = fields.Boolean(required=True)


class InboxReadSchema(Schema):
    message_id = fields.UUID(required=True)
    read = fields.Boolean(required=True)


class VouchInvitationSchema(Schema):
    student_numbers = fields.List(
        fields.String(validate=[validate.Length(1, 64), NOT_BLANK]),
        required=True,
        validate=validate.Length(1, 5),
        metadata={"example": ["2024002", "2024003"]},
    )


class VouchInvitedSchema(Schema):
    recovery_id = fields.UUID(required=True)
    asked = fields.Integer(required=True)
