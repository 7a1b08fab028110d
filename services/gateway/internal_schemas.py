"""Ops and platform systems' public HTTP shapes (``internal.py``)."""

from marshmallow import (
    Schema,
    fields,
    validate,
)

from services.common.contract.events import OwnedCourse
from services.common.contract.fields import (
    UtcDateTime,
)
from services.common.contract.vocabulary import (
    MAX_BALANCE_FEN,
)
from services.common.rules.roles import STAFF_ROLES
from services.gateway.schemas import (
    SCHOOL_CODE_FIELD,
)


class ServiceHealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "up"})
    database = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    latency_ms = fields.Float(allow_none=True)


class LiveSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    services = fields.Dict(
        keys=fields.String(), values=fields.Nested(ServiceHealthSchema), required=True
    )


class AccountFactsSchema(Schema):
    """What the wallet and course systems know of an account, as of a time;
    an older `as_of` than the one stored is ignored."""

    balance_fen = fields.Integer(
        load_default=None,
        strict=True,
        validate=validate.Range(min=0, max=MAX_BALANCE_FEN),
    )
    owned = fields.List(fields.Nested(OwnedCourse), load_default=None)
    as_of = UtcDateTime(required=True)


class AccountFactsStoredSchema(Schema):
    account_id = fields.UUID(required=True)


class SchoolOnboardSchema(Schema):
    code = fields.String(
        required=True, validate=SCHOOL_CODE_FIELD, metadata={"example": "BJ101"}
    )
    name = fields.String(
        required=True,
        validate=validate.Length(1, 128),
        metadata={"example": "北京市第一〇一中学"},
    )
    region = fields.String(load_default=None, validate=validate.Length(1, 64))


class SchoolTokenSchema(Schema):
    code = fields.String(required=True)
    api_token = fields.String(
        required=True, metadata={"description": "shown once; keep it secret"}
    )


class RoleGrantSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    school_code = fields.String(load_default=None, validate=SCHOOL_CODE_FIELD)


class RolesSchema(Schema):
    roles = fields.List(
        fields.Nested(RoleGrantSchema), required=True, validate=validate.Length(max=20)
    )


class RolesSetSchema(Schema):
    account_id = fields.UUID(required=True)
    roles = fields.List(
        fields.String(), required=True, metadata={"example": ["student", "ops"]}
    )


class KannelReceiptQuerySchema(Schema):
    """Kannel's dlr-url query: the delivery and its signature (ours), the
    report type and the SMSC's receipt text (Kannel's %d and %A)."""

    delivery = fields.Integer(required=True, validate=validate.Range(1, 2**62))
    sig = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{1,64}$"))
    type = fields.Integer(required=True, validate=validate.Range(0, 255))
    report = fields.String(load_default="", validate=validate.Length(max=512))


class AliyunReportSchema(Schema):
    """One SmsReport item of Alibaba Cloud's push (their field names)."""

    out_id = fields.String(required=True, validate=validate.Regexp(r"^\d{1,18}$"))
    success = fields.Boolean(required=True)
    err_code = fields.String(load_default="", validate=validate.Length(max=64))
    biz_id = fields.String(load_default=None, validate=validate.Length(max=64))
    phone_number = fields.String(load_default=None, validate=validate.Length(max=32))
    send_time = fields.String(load_default=None, validate=validate.Length(max=32))
    report_time = fields.String(load_default=None, validate=validate.Length(max=32))
    err_msg = fields.String(load_default=None, validate=validate.Length(max=256))
    sms_size = fields.String(load_default=None, validate=validate.Length(max=8))


class ReceiptRecordedSchema(Schema):
    recorded = fields.Integer(required=True, metadata={"example": 1})


class AliyunReceiptAnswerSchema(Schema):
    """What Alibaba's push expects back: code 0 stops its retries."""

    code = fields.Integer(required=True, metadata={"example": 0})
    msg = fields.String(required=True, metadata={"example": "成功"})


class SuspensionFiguresSchema(Schema):
    sent = fields.Integer(required=True, metadata={"example": 240})
    delivered = fields.Integer(required=True, metadata={"example": 236})
    verified = fields.Integer(required=True, metadata={"example": 0})
    verified_share = fields.Float(required=True, metadata={"example": 0.0})
    baseline_per_window = fields.Float(required=True, metadata={"example": 0.4})


class SuspensionSchema(Schema):
    id = fields.Integer(required=True)
    scope = fields.String(
        required=True,
        validate=validate.OneOf(("segment", "network")),
        metadata={"description": "segment: +86 and a mobile's first 7 digits, "
                  "or +country code; network: the client's IPv4 /24 or IPv6 /48"},
    )  # fmt: skip
    key = fields.String(required=True, metadata={"example": "+861380013"})
    level = fields.Integer(required=True, metadata={"example": 1})
    tripped_at = fields.AwareDateTime(required=True)
    until = fields.AwareDateTime(required=True)
    active = fields.Boolean(required=True)
    figures = fields.Nested(SuspensionFiguresSchema, required=True)
    lifted_at = fields.AwareDateTime(allow_none=True)
    lifted_by = fields.String(allow_none=True)


class SuspensionsSchema(Schema):
    suspensions = fields.List(fields.Nested(SuspensionSchema), required=True)
