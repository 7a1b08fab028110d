"""Shapes of the identity service's RPC payloads and answers."""

from marshmallow import EXCLUDE, Schema, fields, validate

from services.identity.realname import ID_TYPES

__all__ = ["RegisterByPhoneRequest", "AccountCreated"]


class RegisterByPhoneRequest(Schema):
    class Meta:
        unknown = EXCLUDE

    phone = fields.String(required=True, validate=validate.Length(1, 32))
    code = fields.String(required=True, validate=validate.Regexp(r"^\d{6}$"))
    password = fields.String(required=True, validate=validate.Length(1, 256))
    name = fields.String(required=True, validate=validate.Length(1, 64))
    id_type = fields.String(required=True, validate=validate.OneOf(ID_TYPES))
    id_number = fields.String(required=True, validate=validate.Length(1, 64))
    email = fields.String(load_default=None, validate=validate.Length(max=254))
    register_anyway = fields.Boolean(load_default=False)


class AccountCreated(Schema):
    account_id = fields.UUID(required=True)
    passport_id = fields.String(required=True)
    status = fields.String(required=True)
