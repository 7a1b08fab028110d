"""The gateway's public HTTP shapes (separate from the internal RPC shapes)."""

from marshmallow import Schema, fields

__all__ = ["ProblemSchema", "HealthSchema", "ServiceHealthSchema"]


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
