"""Shapes of the verification service's RPC payloads and answers."""

from marshmallow import EXCLUDE, Schema, fields, validate

from services.verification.domain import CHANNELS, NOTICE_KINDS, PURPOSES
from services.verification.receipts import RECEIPT_STATES

__all__ = [
    "IssueCodeRequest",
    "IssueCodeAnswer",
    "CheckCodeRequest",
    "CheckCodeAnswer",
    "CaptchaAnswer",
    "VerifyCaptchaRequest",
    "SendNoticeRequest",
    "KannelReceiptRequest",
    "AliyunReceiptsRequest",
    "ReceiptAnswer",
    "CodeDeliveryRequest",
    "CodeDeliveryAnswer",
    "SuspensionsRequest",
    "SuspensionSchema",
    "SuspensionsAnswer",
    "LiftSuspensionRequest",
]


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class IssueCodeRequest(_Strict):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    destination = fields.String(required=True, validate=validate.Length(1, 254))
    purpose = fields.String(required=True, validate=validate.OneOf(PURPOSES))
    client_ip = fields.String(load_default=None, validate=validate.Length(max=64))
    account_id = fields.String(load_default=None, validate=validate.Length(max=64))
    captcha_id = fields.UUID(load_default=None)
    captcha_answer = fields.String(load_default=None, validate=validate.Length(max=16))


class IssueCodeAnswer(Schema):
    code_id = fields.String(
        required=True,
        metadata={"description": "the handle to read this code's delivery by"},
    )
    expires_at = fields.AwareDateTime(required=True)
    resend_after = fields.Integer(required=True, metadata={"description": "seconds"})
    remaining_today = fields.Integer(required=True)
    destination_masked = fields.String(required=True)


class CheckCodeRequest(_Strict):
    destination = fields.String(required=True, validate=validate.Length(1, 254))
    purpose = fields.String(required=True, validate=validate.OneOf(PURPOSES))
    code = fields.String(required=True, validate=validate.Regexp(r"^\d{6}$"))
    channel = fields.String(load_default=None, validate=validate.OneOf(CHANNELS))
    client_ip = fields.String(load_default=None, validate=validate.Length(max=64))


class CheckCodeAnswer(Schema):
    verified = fields.Boolean(required=True)
    destination = fields.String(required=True)
    purpose = fields.String(required=True)
    account_id = fields.String(allow_none=True)


class CaptchaAnswer(Schema):
    captcha_id = fields.UUID(required=True)
    image_png_base64 = fields.String(required=True)
    expires_at = fields.AwareDateTime(required=True)


class VerifyCaptchaRequest(_Strict):
    captcha_id = fields.UUID(required=True)
    answer = fields.String(required=True, validate=validate.Length(1, 16))


class SendNoticeRequest(_Strict):
    """A message without a code; ``notice_key`` makes a retry queue it once."""

    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    destination = fields.String(required=True, validate=validate.Length(1, 254))
    kind = fields.String(required=True, validate=validate.OneOf(NOTICE_KINDS))
    params = fields.Dict(keys=fields.String(), values=fields.String(), load_default={})
    notice_key = fields.String(required=True, validate=validate.Length(8, 200))


class KannelReceiptRequest(_Strict):
    """Kannel's dlr-url, as the gateway got it."""

    delivery_id = fields.Integer(required=True, validate=validate.Range(1, 2**62))
    signature = fields.String(required=True, validate=validate.Length(1, 64))
    dlr_type = fields.Integer(required=True, validate=validate.Range(0, 255))
    report = fields.String(load_default="", validate=validate.Length(max=512))


class AliyunReport(_Strict):
    """One item of Alibaba Cloud's SmsReport (pushed as a JSON array)."""

    out_id = fields.String(required=True, validate=validate.Regexp(r"^\d{1,18}$"))
    success = fields.Boolean(required=True)
    err_code = fields.String(load_default="", validate=validate.Length(max=64))
    biz_id = fields.String(load_default=None, validate=validate.Length(max=64))


class AliyunReceiptsRequest(_Strict):
    reports = fields.List(
        fields.Nested(AliyunReport), required=True, validate=validate.Length(1, 1000)
    )


class ReceiptAnswer(Schema):
    recorded = fields.Integer(
        required=True, metadata={"description": "deliveries the receipts moved"}
    )


class CodeDeliveryRequest(_Strict):
    code_id = fields.String(required=True, validate=validate.Length(1, 64))


class CodeDeliveryAnswer(Schema):
    code_id = fields.String(required=True)
    channel = fields.String(required=True)
    destination_masked = fields.String(required=True)
    state = fields.String(
        required=True,
        validate=validate.OneOf(("queued", "sent", *RECEIPT_STATES)),
    )
    updated_at = fields.AwareDateTime(allow_none=True)
    expires_at = fields.AwareDateTime(required=True)


class SuspensionsRequest(_Strict):
    include_ended = fields.Boolean(load_default=False)


class SuspensionFigures(Schema):
    sent = fields.Integer(required=True)
    delivered = fields.Integer(required=True)
    verified = fields.Integer(required=True)
    verified_share = fields.Float(required=True)
    baseline_per_window = fields.Float(required=True)


class SuspensionSchema(Schema):
    id = fields.Integer(required=True)
    scope = fields.String(
        required=True, validate=validate.OneOf(("segment", "network"))
    )
    key = fields.String(required=True)
    level = fields.Integer(required=True)
    tripped_at = fields.AwareDateTime(required=True)
    until = fields.AwareDateTime(required=True)
    active = fields.Boolean(required=True)
    figures = fields.Nested(SuspensionFigures, required=True)
    lifted_at = fields.AwareDateTime(allow_none=True)
    lifted_by = fields.String(allow_none=True)


class SuspensionsAnswer(Schema):
    suspensions = fields.List(fields.Nested(SuspensionSchema), required=True)


class LiftSuspensionRequest(_Strict):
    suspension_id = fields.Integer(required=True, validate=validate.Range(1, 2**62))
    actor = fields.String(required=True, validate=validate.Length(1, 128))
