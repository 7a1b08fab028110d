"""Shapes of the verification service's RPC payloads and answers."""

from marshmallow import EXCLUDE, Schema, fields, validate

from services.verification.domain import CHANNELS, NOTICE_KINDS, PURPOSES

__all__ = [
    "IssueCodeRequest",
    "IssueCodeAnswer",
    "CheckCodeRequest",
    "CheckCodeAnswer",
    "CaptchaAnswer",
    "VerifyCaptchaRequest",
    "SendNoticeRequest",
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
