"""The gateway's public HTTP shapes (separate from the internal RPC shapes)."""

from marshmallow import Schema, fields, validate

from services.common.vocabulary import CODE_CHANNELS, CODE_PURPOSES, ID_TYPES

__all__ = [
    "ProblemSchema",
    "HealthSchema",
    "ServiceHealthSchema",
    "CodeRequestSchema",
    "CodeIssuedSchema",
    "CaptchaSchema",
]


class ProblemSchema(Schema):
    """RFC 9457 problem details, with a stable ``code``."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"example": "daily_limit_reached"})
    detail = fields.String(required=True)
    message_zh = fields.String()
    message_en = fields.String()


class ServiceHealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "up"})
    database = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    latency_ms = fields.Float(allow_none=True)


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    services = fields.Dict(
        keys=fields.String(), values=fields.Nested(ServiceHealthSchema), required=True
    )


class CodeRequestSchema(Schema):
    """Ask for a verification code."""

    channel = fields.String(
        required=True,
        validate=validate.OneOf(CODE_CHANNELS),
        metadata={"example": "sms"},
    )
    destination = fields.String(
        required=True,
        validate=validate.Length(1, 254),
        metadata={"example": "13812345678"},
    )
    purpose = fields.String(
        required=True,
        validate=validate.OneOf(CODE_PURPOSES),
        metadata={"example": "register"},
    )
    captcha_id = fields.UUID(load_default=None)
    captcha_answer = fields.String(load_default=None, validate=validate.Length(max=16))


class CodeIssuedSchema(Schema):
    expires_at = fields.AwareDateTime(required=True)
    resend_after = fields.Integer(required=True, metadata={"example": 60})
    remaining_today = fields.Integer(required=True, metadata={"example": 4})
    destination_masked = fields.String(metadata={"example": "138****5678"})


class CaptchaSchema(Schema):
    captcha_id = fields.UUID(required=True)
    image_png_base64 = fields.String(required=True)
    expires_at = fields.AwareDateTime(required=True)


class AccountRegistrationSchema(Schema):
    """Register with phone, SMS code, password, real name and ID document."""

    phone = fields.String(
        required=True,
        validate=validate.Length(1, 32),
        metadata={"example": "13812345678"},
    )
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^\d{6}$"),
        metadata={"example": "123456"},
    )
    password = fields.String(
        required=True, validate=validate.Length(1, 256), load_only=True
    )
    name = fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"example": "张三"}
    )
    id_type = fields.String(
        required=True,
        validate=validate.OneOf(ID_TYPES),
        metadata={"example": "resident_id"},
    )
    id_number = fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={"example": "11010519491231002X"},
    )
    email = fields.String(load_default=None, validate=validate.Length(max=254))
    register_anyway = fields.Boolean(load_default=False)


class AccountCreatedSchema(Schema):
    account_id = fields.UUID(required=True)
    passport_id = fields.String(required=True, metadata={"example": "P7KQ2M9XHT4CA"})
    status = fields.String(required=True, metadata={"example": "active"})
