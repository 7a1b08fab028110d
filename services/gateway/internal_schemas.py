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
