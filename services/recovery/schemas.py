"""Shapes of the recovery service's RPC payloads and answers."""

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from services.common.contract.fields import StrictBoolean

__all__ = [
    "StartRecoveryRequest",
    "NewPhoneRequest",
    "FlowRequest",
    "ShareRequest",
    "NotMeRequest",
    "ResetMethodsRequest",
    "ResetCodeRequest",
    "ResetRequest",
    "PhotoRequest",
    "AccountRequest",
    "AssistanceRequest",
    "ReviewsRequest",
    "ReviewRequest",
    "DecisionRequest",
    "InboxRequest",
    "InboxAnswerRequest",
]

CODE = validate.Regexp(r"^\d{6}$")


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class _FromClient(_Strict):
    client_ip = fields.String(load_default=None, validate=validate.Length(max=64))
    device_id = fields.String(load_default=None, validate=validate.Length(max=128))


class StartRecoveryRequest(_FromClient):
    school_code = fields.String(required=True, validate=validate.Length(1, 32))
    student_number = fields.String(required=True, validate=validate.Length(1, 64))
    name = fields.String(required=True, validate=validate.Length(1, 64))


class FlowRequest(_Strict):
    recovery_id = fields.UUID(required=True)
    recovery_token = fields.String(required=True, validate=validate.Length(1, 128))


class NewPhoneRequest(FlowRequest):
    old_phone = fields.String(required=True, validate=validate.Length(1, 32))
    new_phone = fields.String(required=True, validate=validate.Length(1, 32))
    code = fields.String(required=True, validate=CODE)
    new_password = fields.String(required=True, validate=validate.Length(1, 256))
    client_ip = fields.String(load_default=None, validate=validate.Length(max=64))


class ShareRequest(_Strict):
    share_token = fields.String(required=True, validate=validate.Length(1, 200))
    account_id = fields.UUID(required=True)


class NotMeRequest(_Strict):
    token = fields.String(required=True, validate=validate.Length(1, 200))


class ResetMethodsRequest(_Strict):
    login = fields.String(required=True, validate=validate.Length(1, 254))


class ResetCodeRequest(_FromClient):
    login = fields.String(required=True, validate=validate.Length(1, 254))
    method = fields.String(required=True, validate=validate.OneOf(("sms", "email")))


class ResetRequest(_FromClient):
    login = fields.String(required=True, validate=validate.Length(1, 254))
    method = fields.String(
        required=True, validate=validate.OneOf(("sms", "email", "questions"))
    )
    code = fields.String(load_default=None, validate=CODE)
    answers = fields.List(
        fields.String(validate=validate.Length(1, 128)),
        load_default=None,
        validate=validate.Length(3, 3),
    )
    new_password = fields.String(required=True, validate=validate.Length(1, 256))

    @validates_schema
    def _proof_for_method(self, data, **kwargs):
        if data["method"] == "questions":
            if data.get("answers") is None:
                raise ValidationError("answers are required", "answers")
        elif data.get("code") is None:
            raise ValidationError("a code is required", "code")


class AccountRequest(_Strict):
    account_id = fields.UUID(required=True)


class PhotoRequest(AccountRequest):
    # Empty is an upload too (refused as photo_not_image, not as malformed).
    photo_b64 = fields.String(required=True, validate=validate.Length(max=12_000_000))


class AssistanceRequest(AccountRequest):
    classmate_name = fields.String(required=True, validate=validate.Length(1, 64))
    classmate_phone = fields.String(required=True, validate=validate.Length(1, 32))


class _Staff(_Strict):
    actor = fields.String(required=True, validate=validate.Length(1, 80))


class ReviewsRequest(_Staff):
    status = fields.String(
        load_default="open", validate=validate.OneOf(("open", "approved", "rejected"))
    )
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))


class ReviewRequest(_Staff):
    review_id = fields.UUID(required=True)


class DecisionRequest(ReviewRequest):
    approve = StrictBoolean(required=True)
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class InboxRequest(AccountRequest):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))


class InboxAnswerRequest(AccountRequest):
    message_id = fields.UUID(required=True)
    approve = StrictBoolean(required=True)


class InboxReadRequest(AccountRequest):
    message_id = fields.UUID(required=True)


class InvitationRequest(FlowRequest):
    student_numbers = fields.List(
        fields.String(validate=validate.Length(1, 64)),
        required=True,
        validate=validate.Length(1, 5),
    )
